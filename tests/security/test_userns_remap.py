"""User-namespace remapping (``--userns-remap=default``): container root is not host root.

Each test runs against Debian's dockerd started with ``--userns-remap=default`` (its user
``dockremap``) and against our engine started with the same option (its user
``hostbridge-remap``), the same commands typed into the stock docker CLI. Both add their user's
ranges to /etc/subuid and /etc/subgid on this machine when missing, as dockerd does.
"""

import io
import os
import subprocess
import tarfile

import pytest

from tests.cli.conftest import Backend, running_dockerd
from tests.support.engine import Engine

REMAP_USER = {"dockerd": "dockremap", "engine": "hostbridge-remap"}


@pytest.fixture(scope="module")
def dockerd_remapped(busybox_rootfs_tar):
    with running_dockerd(busybox_rootfs_tar, ["--userns-remap=default"]) as backend:
        yield backend


@pytest.fixture(scope="module")
def engine_remapped(tmp_path_factory, busybox_rootfs_tar):
    base = tmp_path_factory.mktemp("remapped")
    e = Engine(base, args=["--userns-remap", "default"]).start()
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        yield Backend("engine", e.url, str(base))
    finally:
        e.close()


@pytest.fixture(params=["dockerd", "engine"])
def remapped(request):
    """Each test once against dockerd --userns-remap=default, once against our engine's."""
    return request.getfixturevalue(request.param + "_remapped")


def subordinate_start(user, path="/etc/subuid"):
    with open(path) as f:
        for line in f:
            name, start, _count = line.strip().split(":")
            if name == user:
                return int(start)
    raise AssertionError("%s has no range in %s" % (user, path))


def ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout


def host_ids(pid):
    """The real uid and gid of a host process (/proc/PID/status)."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                ids[line[:3]] = int(line.split()[1])
    return ids["Uid"], ids["Gid"]


def test_root_inside_is_a_subordinate_uid_on_the_host(remapped):
    uid0 = subordinate_start(REMAP_USER[remapped.name])
    gid0 = subordinate_start(REMAP_USER[remapped.name], "/etc/subgid")
    cid = ok(remapped.docker("run", "-d", "busybox", "sleep", "60")).strip()
    try:
        assert ok(remapped.docker("exec", cid, "id", "-u")).strip() == "0"
        assert ok(remapped.docker("exec", cid, "id", "-g")).strip() == "0"
        pid = int(ok(remapped.docker("inspect", "-f", "{{.State.Pid}}", cid)))
        assert host_ids(pid) == (uid0, gid0)
        # an exec'd process too, not only the container's first
        out = ok(remapped.docker("exec", cid, "sh", "-c", "cat /proc/self/status | grep ^Uid; cat /proc/self/uid_map"))
        assert out.split()[1] == "0"
        assert out.split()[-3:] == ["0", str(uid0), "65536"]
    finally:
        remapped.docker("rm", "-f", cid)


def test_host_files_bound_read_write_are_not_root_s(remapped, tmp_path):
    os.chmod(tmp_path, 0o755)
    f = tmp_path / "secret"
    f.write_text("host data\n")
    os.chmod(f, 0o644)
    d = tmp_path / "dir"
    d.mkdir(mode=0o755)
    r = remapped.docker("run", "--rm", "-v", "%s:/f" % f, "-v", "%s:/d" % d, "busybox", "sh", "-c",
                        "echo pwned >> /f || echo f-denied; echo pwned > /d/new || echo d-denied; ls -ln /f")
    assert r.returncode == 0, r.stderr
    assert "f-denied" in r.stdout and "d-denied" in r.stdout
    assert f.read_text() == "host data\n"
    assert not (d / "new").exists()
    assert " 65534 " in r.stdout  # host root's file shows as the overflow id inside


def test_everyday_flags_keep_working(remapped):
    """Root in its own user namespace still owns what a container's root owns: its network
    (a port below 1024, ping), /dev/shm, tmpfs, --read-only, --init, --user, --sysctl."""
    r = remapped.docker("run", "--rm", "busybox", "sh", "-c",
                        "nc -l -p 80 & sleep 0.5; netstat -ltn | grep -c ':80 '; ping -c1 -W2 127.0.0.1 >/dev/null "
                        "&& echo pinged; echo x > /dev/shm/x && echo shm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "pinged", "shm"]
    r = remapped.docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--init", "--user", "1000:1000",
                        "--sysctl", "net.ipv4.ip_forward=1", "busybox", "sh", "-c",
                        "id -u; touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp; "
                        "cat /proc/sys/net/ipv4/ip_forward; cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["1000", "ro", "tmp", "1"]
    assert "init" in lines[4]


def test_docker_info_lists_userns(remapped):
    out = ok(remapped.docker("info", "-f", "{{json .SecurityOptions}}"))
    assert "name=userns" in out


@pytest.mark.parametrize("flags, message", [
    (["--privileged"], "privileged mode is incompatible with user namespaces"),
    (["--network", "host"], "cannot share the host's network namespace when user namespaces are enabled"),
    (["--pid", "host"], "cannot share the host PID namespace when user namespaces are enabled"),
])
def test_host_namespaces_need_userns_host(remapped, flags, message):
    r = remapped.docker("run", "--rm", *flags, "busybox", "true")
    assert r.returncode != 0 and message in r.stderr, r.stderr
    r = remapped.docker("run", "--rm", "--userns", "host", *flags, "busybox", "true")
    assert message not in r.stderr
    if remapped.name == "dockerd" and "--privileged" in flags:
        # past its userns check, runc fails here to apply every capability ("unable to apply
        # caps") in this sandbox; a fact of the machine, not of remapping
        return
    assert r.returncode == 0, r.stderr


def test_userns_host_container_is_host_root(remapped):
    cid = ok(remapped.docker("run", "-d", "--userns", "host", "busybox", "sleep", "60")).strip()
    try:
        pid = int(ok(remapped.docker("inspect", "-f", "{{.State.Pid}}", cid)))
        assert host_ids(pid) == (0, 0)
    finally:
        remapped.docker("rm", "-f", cid)


def test_cp_volumes_commit_keep_container_ids(remapped, tmp_path):
    """cp in and out, a named volume, commit and a joined network all see root as 0."""
    cid = ok(remapped.docker("run", "-d", "-v", "remapvol:/data", "busybox", "sleep", "60")).strip()
    try:
        ok(remapped.docker("exec", cid, "sh", "-c", "touch /data/v /made && mkdir /dir && chown 1000:1000 /dir"))
        src = tmp_path / "in.txt"
        src.write_text("in\n")
        ok(remapped.docker("cp", str(src), cid + ":/in.txt"))
        assert ok(remapped.docker("exec", cid, "stat", "-c", "%u:%g", "/in.txt", "/data/v", "/dir")).split() == [
            "0:0", "0:0", "1000:1000"]
        # dockerd 20.10 (to this day: moby/moby#43698, open) writes the host's subordinate ids
        # into `cp`'s tar, which its own `cp` into a container then refuses; ours writes the
        # container's, so that the tar round-trips
        shift = subordinate_start(REMAP_USER[remapped.name]) if remapped.name == "dockerd" else 0
        for path, ids in (("/dir", (1000, 1000)), ("/made", (0, 0))):
            out = subprocess.run(["docker", "cp", cid + ":" + path, "-"], capture_output=True, env=remapped.env())
            assert out.returncode == 0, out.stderr
            with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
                assert [(m.uid, m.gid) for m in t.getmembers()] == [(ids[0] + shift, ids[1] + shift)]
        joined = remapped.docker("run", "--rm", "--network", "container:" + cid, "busybox", "id", "-u")
        assert ok(joined).strip() == "0"
        ok(remapped.docker("commit", cid, "remapped-commit:1"))
        # the layer holds the container's ids: a remapped container of the image sees them
        out = ok(remapped.docker("run", "--rm", "remapped-commit:1", "stat", "-c", "%u:%g", "/made", "/dir"))
        assert out.split() == ["0:0", "1000:1000"]
        # with --userns host, dockerd's layers (stored chowned to the range: moby/moby#31332)
        # show the host's subordinate ids; ours are stored as the image has them
        out = ok(remapped.docker("run", "--rm", "--userns", "host", "remapped-commit:1", "stat", "-c", "%u:%g",
                                 "/made", "/dir"))
        assert out.split() == ["%d:%d" % (i + shift, i + shift) for i in (0, 1000)]
    finally:
        remapped.docker("rm", "-f", cid)
        remapped.docker("rmi", "-f", "remapped-commit:1")
        remapped.docker("volume", "rm", "-f", "remapvol")


def test_build_run_steps_run_remapped(remapped, tmp_path):
    """RUN runs as the remapped root; COPY and RUN files reach the image with the container's ids."""
    uid0 = subordinate_start(REMAP_USER[remapped.name])
    (tmp_path / "f.txt").write_text("copied\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY f.txt /f.txt\nRUN echo built > /built && mkdir /owned && chown 1000:1000 /owned && "
        "cat /f.txt >> /built && cat /proc/self/uid_map > /map\n")
    r = subprocess.run(["docker", "build", "-q", "-t", "remapped-build:1", str(tmp_path)], capture_output=True,
                       text=True, env=remapped.env(DOCKER_BUILDKIT="0"), timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        out = ok(remapped.docker("run", "--rm", "remapped-build:1", "sh", "-c",
                                 "cat /built /map; stat -c %u:%g /built /owned /f.txt"))
        assert out.split() == ["built", "copied", "0", str(uid0), "65536", "0:0", "1000:1000", "0:0"]
        saved = subprocess.run(["docker", "save", "remapped-build:1"], capture_output=True, env=remapped.env())
        assert saved.returncode == 0
        with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as t:
            layers = [m for m in t.getmembers() if m.name.endswith(".tar") or m.name.startswith("blobs/")]
            owners = {}
            for m in layers:
                if not m.isfile():
                    continue
                try:
                    with tarfile.open(fileobj=t.extractfile(m)) as layer:
                        owners.update({x.name: (x.uid, x.gid) for x in layer.getmembers()})
                except tarfile.ReadError:
                    continue  # a JSON blob
        assert owners["built"] == (0, 0) and owners["owned"] == (1000, 1000)
    finally:
        remapped.docker("rmi", "-f", "remapped-build:1")


@pytest.mark.parametrize("value, words", [
    ("a:b:c", "invalid --userns-remap"),
    ("no-such-user-hb", "no such user"),
    ("nobody", "has no range"),
])
def test_bad_remap_option_is_one_line_at_start(tmp_path, value, words):
    e = Engine(tmp_path, args=["--userns-remap", value])
    with pytest.raises(RuntimeError) as info:
        e.start()
    err = str(info.value).split("\n")[0]
    assert words in err
    assert not os.path.exists(e.sock)


def test_layer_copy_keeps_whiteouts_xattrs_links_and_setuid(tmp_path):
    """The per-range layer copy (dockerd's chown'd copy) keeps what overlay reads in a layer."""
    from hostbridge.guest import userns
    src = tmp_path / "src"
    (src / "opaque").mkdir(parents=True)
    os.setxattr(str(src / "opaque"), "trusted.overlay.opaque", b"y")
    os.mknod(str(src / "gone"), 0o600 | 0o020000, os.makedev(0, 0))
    (src / "su").write_bytes(b"#!/bin/sh\n")
    os.chown(str(src / "su"), 1000, 1000)
    os.chmod(str(src / "su"), 0o4755)
    os.link(str(src / "su"), str(src / "su-link"))
    os.symlink("su", str(src / "sym"))
    remap = userns.Remap("u", "u", [[0, 100000, 65536]], [[0, 100000, 65536]])
    dst = tmp_path / "dst"
    userns.copy_shifted(str(src), str(dst), remap)
    st = os.lstat(str(dst / "su"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (101000, 101000, 0o4755)
    assert st.st_ino == os.lstat(str(dst / "su-link")).st_ino
    assert os.getxattr(str(dst / "opaque"), "trusted.overlay.opaque") == b"y"
    gone = os.lstat(str(dst / "gone"))
    assert (gone.st_mode & 0o170000, gone.st_rdev, gone.st_uid) == (0o020000, 0, 100000)
    assert os.readlink(str(dst / "sym")) == "su" and os.lstat(str(dst / "sym")).st_uid == 100000
    assert os.lstat(str(dst)).st_uid == 100000


def test_engine_restarted_without_remap_refuses_its_remapped_containers(tmp_path, busybox_rootfs_tar):
    """dockerd keeps a data root per range, so its containers vanish when the option changes;
    ours stay listed, and a start that would give them the wrong ids is refused in one line."""
    e = Engine(tmp_path, args=["--userns-remap", "default"]).start()
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        b = Backend("engine", e.url, str(tmp_path))
        ok(b.docker("create", "--name", "made-remapped", "busybox", "true"))
        ok(b.docker("create", "--name", "made-host", "--userns", "host", "busybox", "true"))
        e.stop()
        e.args = []
        e.start()
        r = b.docker("start", "made-remapped")
        assert r.returncode != 0
        assert "created for the remapped range" in r.stderr and "--userns-remap" in r.stderr
        ok(b.docker("start", "made-host"))
    finally:
        e.close()


def test_shift_tree_chowns_a_hard_linked_inode_once(tmp_path):
    from hostbridge.guest import userns
    remap = userns.Remap("u", "u", [[0, 100000, 65536]], [[0, 100000, 65536]])
    (tmp_path / "a").write_text("x")
    os.chown(str(tmp_path / "a"), 1000, 1000)
    os.link(str(tmp_path / "a"), str(tmp_path / "b"))
    userns.shift_tree(str(tmp_path), remap)
    assert os.lstat(str(tmp_path / "b")).st_uid == 101000 and os.lstat(str(tmp_path)).st_uid == 100000
    userns.shift_tree(str(tmp_path), remap, back=True)
    assert os.lstat(str(tmp_path / "a")).st_uid == 1000 and os.lstat(str(tmp_path)).st_uid == 0
