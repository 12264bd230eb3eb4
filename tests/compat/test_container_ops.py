"""stats, top, pause, port, rename, prune, diff, commit, export, cp, inspect."""

import base64
import io
import json
import os
import subprocess
import tarfile
import time

import pytest

from tests.support.engine import UnixHTTPConnection

from .conftest import dock, ok

pytestmark = pytest.mark.root


@pytest.fixture
def busy(env):
    ok(env, "run", "-d", "--name", "compat-busy", "--network", "none", "-m", "48m", "--pids-limit", "40", "busybox",
       "sh", "-c", "head -c 8000000 /dev/zero | tr '\\0' x > /dev/shm/fill; while true; do :; done")
    time.sleep(0.5)
    return "compat-busy"


def test_stats_no_stream_is_prompt_and_cgroup_backed(env, busy):
    # ok()'s timeout bounds a hang; how prompt it is is bench/latency.py's figure
    out = ok(env, "stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", busy)
    name, cpu, mem, pids = out.strip().split("|")
    assert name == busy and int(pids) >= 1
    assert float(cpu.rstrip("%")) > 10  # a busy loop shows
    usage, limit = mem.split(" / ")
    assert limit == "48MiB" and usage.endswith("MiB") and float(usage[:-3]) >= 7  # the 8 MB in /dev/shm
    every = ok(env, "stats", "--no-stream", "--format", "{{.Name}}")  # all running containers
    assert busy in every.split()
    table = ok(env, "stats", "--no-stream", busy)
    assert table.split("\n")[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]


def test_stats_stream_two_updates(engine, busy):
    conn = UnixHTTPConnection(engine.sock, timeout=10)
    conn.request("GET", "/v1.44/containers/%s/stats?stream=1" % busy)
    r = conn.getresponse()
    assert r.status == 200
    a, b = json.loads(r.readline()), json.loads(r.readline())
    conn.close()
    assert b["cpu_stats"]["cpu_usage"]["total_usage"] > a["cpu_stats"]["cpu_usage"]["total_usage"]
    assert b["precpu_stats"]["cpu_usage"]["total_usage"] == a["cpu_stats"]["cpu_usage"]["total_usage"]
    assert isinstance(b["memory_stats"]["usage"], int) and b["memory_stats"]["limit"] == 48 << 20
    assert b["pids_stats"]["current"] >= 1 and b["pids_stats"]["limit"] == 40
    assert b["read"].endswith("Z") and b["name"] == "/" + busy


def test_stats_cli_streaming(env, busy):
    p = subprocess.Popen(["docker", "stats", "--format", "{{.Name}} {{.PIDs}}", busy], env=env, stdout=subprocess.PIPE)
    try:
        import select
        seen = b""
        end = time.monotonic() + 8
        while seen.count(busy.encode()) < 2 and time.monotonic() < end:
            if select.select([p.stdout], [], [], 1)[0]:
                seen += os.read(p.stdout.fileno(), 65536)
    finally:
        p.kill()
        p.wait()
    assert seen.count(busy.encode()) >= 2


def test_sdk_stats_top(sdk, busy):
    c = sdk.containers.get(busy)
    s = c.stats(stream=False)
    assert s["memory_stats"]["limit"] == 48 << 20 and s["cpu_stats"]["online_cpus"] >= 1
    top = c.top()
    assert "PID" in top["Titles"] and any("while true" in " ".join(p) for p in top["Processes"])


def test_top_and_ps_args(env, busy):
    out = ok(env, "top", busy)
    assert out.split()[:3] == ["UID", "PID", "PPID"] and "head -c" not in out.split("\n", 1)[0]
    aux = ok(env, "top", busy, "aux")
    assert "%CPU" in aux.split("\n")[0] and "while true" in aux
    r = dock(env, "top", "compat-nosuch")
    assert r.returncode == 1 and "No such container" in r.stderr


def test_pause_unpause_freezes(env, busy):
    ok(env, "pause", busy)
    assert ok(env, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", busy) == "paused true\n"
    assert "(Paused)" in ok(env, "ps", "--filter", "name=" + busy, "--format", "{{.Status}}")
    assert ok(env, "ps", "--filter", "status=paused", "--format", "{{.Names}}").split() == [busy]
    pid = int(ok(env, "inspect", "-f", "{{.State.Pid}}", busy))
    with open("/proc/%d/stat" % pid) as f:
        t1 = int(f.read().rsplit(")", 1)[1].split()[12])
    time.sleep(0.5)
    with open("/proc/%d/stat" % pid) as f:
        t2 = int(f.read().rsplit(")", 1)[1].split()[12])
    assert t2 == t1  # no CPU time while frozen
    r = dock(env, "pause", busy)
    assert r.returncode == 1 and "already paused" in r.stderr
    ok(env, "unpause", busy)
    assert ok(env, "inspect", "-f", "{{.State.Status}}", busy) == "running\n"
    r = dock(env, "unpause", busy)
    assert r.returncode == 1 and "is not paused" in r.stderr


def test_port_rename_and_prune(env):
    ok(env, "create", "--name", "compat-old", "busybox", "true")
    assert ok(env, "port", "compat-old") == ""
    ok(env, "rename", "compat-old", "compat-new")
    assert ok(env, "inspect", "-f", "{{.Name}}", "compat-new") == "/compat-new\n"
    assert dock(env, "inspect", "compat-old").returncode == 1
    r = dock(env, "rename", "compat-new", "bad name")
    assert r.returncode == 1 and "Invalid container name" in r.stderr
    ok(env, "run", "-d", "--name", "compat-keep", "--network", "none", "busybox", "sleep", "100")
    out = ok(env, "container", "prune", "-f", "--filter", "label!=nothing")
    assert "Deleted Containers:" in out and "Total reclaimed space:" in out
    assert dock(env, "inspect", "compat-new").returncode == 1
    assert ok(env, "inspect", "-f", "{{.State.Running}}", "compat-keep") == "true\n"
    assert ok(env, "container", "prune", "-f") == "Total reclaimed space: 0B\n"


def test_image_prune(env):
    ok(env, "run", "--name", "compat-ipr", "--network", "none", "busybox", "touch", "/x")
    dangling = ok(env, "commit", "compat-ipr").strip()
    # only labelled images may go: the engine is shared with the other tests
    ok(env, "commit", "-c", "LABEL compat=prune", "compat-ipr", "compat/unused:1")
    out = ok(env, "image", "prune", "-f")
    assert "deleted: " + dangling in out
    assert "compat/unused:1" in ok(env, "images", "--format", "{{.Repository}}:{{.Tag}}")
    ok(env, "rm", "compat-ipr")
    out = ok(env, "image", "prune", "-a", "-f", "--filter", "label=compat=prune")
    assert "untagged: compat/unused:1" in out and "Total reclaimed space:" in out
    assert "compat/unused" not in ok(env, "images", "--format", "{{.Repository}}")


def test_diff_commit_export(env, tmp_path):
    ok(env, "run", "--name", "compat-dc", "--network", "none", "busybox", "sh", "-c",
       "echo new > /etc/newfile; rm /bin/vi; mkdir /data; echo d > /data/f")
    assert ok(env, "diff", "compat-dc").splitlines() == ["C /bin", "D /bin/vi", "C /etc", "A /etc/newfile", "A /data",
                                                          "A /data/f"] or \
        sorted(ok(env, "diff", "compat-dc").splitlines()) == sorted(
            ["C /bin", "D /bin/vi", "C /etc", "A /etc/newfile", "A /data", "A /data/f"])
    iid = ok(env, "commit", "-m", "my message", "-a", "me", "-c", "ENV COMMITTED=yes", "-c", "WORKDIR /data",
             "-c", 'CMD ["cat", "f"]', "compat-dc", "compat/committed:1").strip()
    assert iid.startswith("sha256:")
    assert ok(env, "run", "--rm", "--network", "none", "compat/committed:1") == "d\n"
    assert ok(env, "run", "--rm", "--network", "none", "compat/committed:1", "sh", "-c",
              "echo $COMMITTED; cat /etc/newfile; ls /bin/vi 2>&1 || true") == \
        "yes\nnew\nls: /bin/vi: No such file or directory\n"
    info = json.loads(ok(env, "image", "inspect", "compat/committed:1"))[0]
    assert info["Comment"] == "my message" and info["Author"] == "me"
    hist = ok(env, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "compat/committed:1")
    assert hist.splitlines()[0].startswith("sh -c ") and hist.splitlines()[0].endswith("|my message")
    out = tmp_path / "x.tar"
    ok(env, "export", "-o", str(out), "compat-dc")
    with tarfile.open(str(out)) as t:
        names = set(t.getnames())
        assert t.extractfile("etc/newfile").read() == b"new\n"
    assert "bin/busybox" in names and "bin/vi" not in names
    piped = subprocess.run(["docker", "export", "compat-dc"], env=env, capture_output=True, timeout=60)
    assert piped.returncode == 0 and len(piped.stdout) > 1000000
    dock(env, "rmi", "compat/committed:1")


def _path_stat(engine, name, path):
    conn = UnixHTTPConnection(engine.sock)
    conn.request("HEAD", "/v1.44/containers/%s/archive?path=%s" % (name, path))
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status, r.getheader("X-Docker-Container-Path-Stat")


def test_cp_both_ways(env, engine, tmp_path):
    ok(env, "run", "-d", "--name", "compat-cp", "--network", "none", "busybox", "sleep", "1000")
    src = tmp_path / "dir"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))
    ok(env, "cp", str(src), "compat-cp:/tmp/")
    ok(env, "cp", str(big), "compat-cp:/tmp/big.bin")  # the CLI sends PUT /archive chunked
    ok(env, "cp", str(src / "a.txt"), "compat-cp:/etc")  # a file into a directory
    out = ok(env, "exec", "compat-cp", "sh", "-c", "cat /tmp/dir/a.txt /tmp/dir/sub/b.txt /etc/a.txt; "
                                                    "md5sum /tmp/big.bin | cut -d' ' -f1")
    import hashlib
    assert out == "ABA" + hashlib.md5(big.read_bytes()).hexdigest() + "\n"  # the files have no newline
    back = tmp_path / "back"
    ok(env, "cp", "compat-cp:/tmp/dir", str(back))
    assert (back / "sub" / "b.txt").read_text() == "B"
    ok(env, "cp", "compat-cp:/tmp/big.bin", str(tmp_path / "big2.bin"))
    assert (tmp_path / "big2.bin").read_bytes() == big.read_bytes()
    tar = subprocess.run(["docker", "cp", "compat-cp:/etc/hostname", "-"], env=env, capture_output=True, timeout=30)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        assert t.getnames() == ["hostname"]
    status, header = _path_stat(engine, "compat-cp", "/tmp/dir")
    st = json.loads(base64.b64decode(header))
    assert status == 200 and st["name"] == "dir" and st["mode"] & (1 << 31) and st["mtime"].endswith("Z")
    r = dock(env, "cp", "compat-cp:/nonexistent", str(tmp_path))
    assert r.returncode == 1 and "Could not find the file /nonexistent in container compat-cp" in r.stderr
    # a stopped container too
    ok(env, "stop", "-t", "0", "compat-cp")
    ok(env, "cp", str(src / "a.txt"), "compat-cp:/stopped.txt")
    ok(env, "cp", "compat-cp:/stopped.txt", str(tmp_path / "s.txt"))
    assert (tmp_path / "s.txt").read_text() == "A"


def test_sdk_archives_and_commit(sdk, tmp_path):
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True, name="compat-sdkar", network_mode="none")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from sdk"
        ti = tarfile.TarInfo("note.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    stream, stat = c.get_archive("/tmp/note.txt")
    assert stat["name"] == "note.txt" and stat["size"] == 8
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        assert t.extractfile("note.txt").read() == b"from sdk"
    img = c.commit("compat/sdkcommit", "v1", changes=["CMD cat /tmp/note.txt"])
    assert "compat/sdkcommit:v1" in img.tags
    assert sdk.containers.run("compat/sdkcommit:v1", remove=True, network_mode="none") == b"from sdk"
    sdk.images.remove("compat/sdkcommit:v1")


def test_inspect_shapes_and_templates(env):
    ok(env, "run", "--name", "compat-insp", "--network", "none", "-l", "a=b", "busybox", "true")
    i = json.loads(ok(env, "inspect", "compat-insp"))[0]
    assert i["Name"] == "/compat-insp" and i["Image"].startswith("sha256:") and len(i["Image"]) == 71
    assert i["HostConfig"]["LogConfig"]["Type"] == "json-file"
    for t in (i["Created"], i["State"]["StartedAt"], i["State"]["FinishedAt"]):
        assert t.endswith("Z") and "T" in t
    assert isinstance(i["State"]["ExitCode"], int) and isinstance(i["HostConfig"]["Memory"], int)
    assert i["Config"]["Labels"] == {"a": "b"} and list(i["NetworkSettings"]["Networks"]) == ["none"]
    assert ok(env, "inspect", "-f", "{{.Config.Labels.a}} {{json .State.ExitCode}} {{.HostConfig.LogConfig.Type}}",
              "compat-insp") == "b 0 json-file\n"
    assert ok(env, "container", "inspect", "--format", "{{.Name}}", "compat-insp") == "/compat-insp\n"
    img = json.loads(ok(env, "image", "inspect", "busybox"))[0]
    assert "busybox:latest" in img["RepoTags"]  # other tiers may add tags of their own
    assert isinstance(img["Size"], int) and img["Created"].endswith("Z") and img["Os"] == "linux"
    assert ok(env, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox") in ("linux/amd64\n",
                                                                                         "linux/arm64\n")
    # a container and an image in one docker inspect
    mixed = json.loads(ok(env, "inspect", "compat-insp", "busybox"))
    assert mixed[0]["Name"] == "/compat-insp" and "RepoTags" in mixed[1]
    assert ok(env, "inspect", "--type", "image", "-f", "{{.Id}}", "busybox").startswith("sha256:")
    r = dock(env, "inspect", "compat-nosuch-thing")
    assert r.returncode == 1 and "No such object: compat-nosuch-thing" in r.stderr
    ps = json.loads(ok(env, "ps", "-a", "--filter", "name=compat-insp", "--format", "{{json .}}"))
    assert ps["Names"] == "compat-insp"
