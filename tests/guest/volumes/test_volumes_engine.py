"""Volumes and mounts through the real engine and the stock docker CLI."""

import json
import os

import pytest

from tests.guest.network.netutil import dk, inspect

pytestmark = pytest.mark.root


@pytest.fixture
def made(docker_env):
    """Containers and volumes the test makes; removed afterwards whatever happens."""
    m = {"containers": [], "volumes": []}
    yield m
    for c in m["containers"]:
        dk(docker_env, "rm", "-f", "-v", c, check=False)
    for v in m["volumes"]:
        dk(docker_env, "volume", "rm", "-f", v, check=False)


def _run(env, *args, check=True):
    """``docker run`` detached, waited for; returns (exit code, logs)."""
    cid = dk(env, "run", "-d", *args).stdout.strip()
    code = int(dk(env, "wait", cid).stdout.strip())
    out = dk(env, "logs", cid).stdout + dk(env, "logs", cid).stderr
    if check:
        assert code == 0, out
    return cid, code, out


def test_named_volume_survives_its_container(docker_env, made):
    made["volumes"].append("vt-data")
    a, _, _ = _run(docker_env, "-v", "vt-data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    made["containers"].append(a)
    m = inspect(docker_env, a)["Mounts"]
    assert m[0]["Type"] == "volume" and m[0]["Name"] == "vt-data" and m[0]["Destination"] == "/data"
    assert m[0]["Driver"] == "local" and m[0]["RW"] is True and m[0]["Source"].endswith("/vt-data/_data")
    dk(docker_env, "rm", a)
    b, _, out = _run(docker_env, "-v", "vt-data:/data", "busybox", "cat", "/data/f")
    made["containers"].append(b)
    assert out.strip() == "kept"
    df = {v["Name"]: v for v in json.loads(dk(docker_env, "system", "df", "-v", "--format", "{{json .Volumes}}").stdout)}
    assert str(df["vt-data"]["Links"]) == "1" and df["vt-data"]["Size"] != "0B"
    busy = dk(docker_env, "volume", "rm", "vt-data", check=False)
    assert busy.returncode != 0 and "volume is in use" in busy.stderr


def test_read_only_refuses_writes(docker_env, made, tmp_path):
    src = tmp_path / "ro-src"
    src.mkdir()
    (src / "f").write_text("host")
    cid, code, out = _run(docker_env, "-v", "%s:/ro:ro" % src, "busybox", "sh", "-c",
                          "cat /ro/f; echo x > /ro/g", check=False)
    made["containers"].append(cid)
    assert code != 0 and "host" in out and "Read-only file system" in out
    assert not (src / "g").exists()
    assert inspect(docker_env, cid)["Mounts"][0]["RW"] is False


def test_bind_sources_as_docker(docker_env, made, tmp_path):
    missing = tmp_path / "made-by-v"
    cid, _, _ = _run(docker_env, "-v", "%s:/b" % missing, "busybox", "sh", "-c", "echo w > /b/x")
    made["containers"].append(cid)
    assert (missing / "x").read_text() == "w\n"
    m = inspect(docker_env, cid)["Mounts"][0]
    assert m == {"Type": "bind", "Source": str(missing), "Destination": "/b", "Mode": "", "RW": True,
                 "Propagation": "rprivate"}
    r = dk(docker_env, "run", "--rm", "--mount", "type=bind,src=%s,dst=/b" % (tmp_path / "nope"), "busybox", "true",
           check=False)
    assert r.returncode != 0 and "bind source path does not exist" in r.stderr
    assert not (tmp_path / "nope").exists()


def test_volume_seeded_from_image(docker_env, made):
    made["volumes"].append("vt-seed")
    cid, _, _ = _run(docker_env, "-v", "vt-seed:/bin", "busybox", "true")
    made["containers"].append(cid)
    path = json.loads(dk(docker_env, "volume", "inspect", "vt-seed").stdout)[0]["Mountpoint"]
    assert os.path.exists(os.path.join(path, "busybox"))


def test_anonymous_volume_removed_with_rm_v(docker_env, made):
    cid, _, _ = _run(docker_env, "-v", "/scratch", "busybox", "sh", "-c", "echo a > /scratch/a")
    m = inspect(docker_env, cid)["Mounts"][0]
    assert m["Type"] == "volume" and len(m["Name"]) == 64
    assert m["Name"] in dk(docker_env, "volume", "ls", "-q").stdout.split()
    dk(docker_env, "rm", "-v", cid)
    assert m["Name"] not in dk(docker_env, "volume", "ls", "-q").stdout.split()


def test_volumes_from_and_tmpfs(docker_env, made):
    made["volumes"].append("vt-shared")
    src, _, _ = _run(docker_env, "-v", "vt-shared:/shared", "busybox", "sh", "-c", "echo s > /shared/s")
    made["containers"].append(src)
    cid, _, out = _run(docker_env, "--volumes-from", "%s:ro" % src, "--tmpfs", "/t1:size=1m",
                       "--mount", "type=tmpfs,dst=/t2", "busybox", "sh", "-c",
                       "cat /shared/s; grep -E ' /t[12] ' /proc/mounts; touch /shared/x || echo refused")
    made["containers"].append(cid)
    assert out.splitlines()[0] == "s" and "refused" in out
    assert " /t1 tmpfs" in out and " /t2 tmpfs" in out and "size=1024k" in out
    mounts = {m["Destination"]: m for m in inspect(docker_env, cid)["Mounts"]}
    assert mounts["/shared"]["RW"] is False and mounts["/t2"]["Type"] == "tmpfs"


def test_volume_cli_shapes_and_bad_names(engine, docker_env, made):
    made["volumes"].append("vt-shape")
    dk(docker_env, "volume", "create", "--label", "k=v", "vt-shape")
    rows = [json.loads(x) for x in dk(docker_env, "volume", "ls", "--format", "{{json .}}").stdout.splitlines()]
    row = {r["Name"]: r for r in rows}["vt-shape"]
    assert row["Driver"] == "local" and row["Scope"] == "local" and row["Labels"] == "k=v"
    v = json.loads(dk(docker_env, "volume", "inspect", "vt-shape").stdout)[0]
    assert set(v) >= {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    for bad in ("a/b", "..", "x..y"):
        status, body = engine.request("POST", "/volumes/create", {"Name": bad})
        assert status == 400 and "invalid volume name" in body["message"]
    assert engine.request("GET", "/volumes/..")[0] == 404
    assert "vt-shape" in dk(docker_env, "volume", "prune", "-a", "-f").stdout


@pytest.mark.root
def test_a_bind_volume_is_unbound_at_engine_stop_and_bound_again_at_start(tmp_path, busybox_rootfs_tar):
    """The engine's state never leads into a host directory while the engine is down (whoever
    deletes the state then deletes nothing of the host's), and the volume works after a restart."""
    import subprocess

    from hostbridge.guest.volumes.store import _mounted
    from tests.support.engine import Engine

    if os.geteuid() != 0:
        pytest.skip("needs root")
    src = tmp_path / "src"
    src.mkdir()
    (src / "kept").write_text("x")
    e = Engine(tmp_path / "e").start()
    env = dict(os.environ, DOCKER_HOST=e.url)
    docker = lambda *a: subprocess.run(["docker"] + list(a), env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    data = os.path.join(e.root, "volumes", "bv", "_data")
    try:
        e.import_tar(busybox_rootfs_tar)
        assert docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device=%s" % src,
                      "bv").returncode == 0
        assert docker("create", "--name", "bvc", "--network", "none", "-v", "bv:/d", "busybox", "ls", "/d").returncode == 0
        assert _mounted(data)
        e.stop()
        assert not _mounted(data) and os.listdir(src) == ["kept"]
        e.start()
        assert _mounted(data)
        r = docker("start", "-a", "bvc")
        assert r.returncode == 0 and r.stdout == "kept\n", r.stderr
        assert docker("rm", "bvc").returncode == 0 and docker("volume", "rm", "bv").returncode == 0
        assert not _mounted(data) and os.listdir(src) == ["kept"]
    finally:
        e.cleanup_containers()
        e.stop()
