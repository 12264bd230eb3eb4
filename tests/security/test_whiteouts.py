"""Whiteout names in tars: ``.wh.``, ``.wh..``, ``.wh...`` never delete the destination or its parent.

docker extracts ``docker cp`` archives and build contexts with no whiteout converter: a member
named ``.wh.x`` is just a file. Only layers (load, import, pull) carry whiteouts, and there
each must name an entry of its own directory.
"""

import os
import subprocess

import pytest

from tests.security.tars import tar_of

HOSTILE = [".wh..", ".wh...", ".wh.", ".wh.keep", ".wh..wh..opq"]


def _cp_in(backend, cid, dest, data):
    return subprocess.run(["docker", "cp", "-", "%s:%s" % (cid, dest)], input=data, capture_output=True,
                          timeout=60, env=backend.env())


@pytest.mark.parametrize("name", HOSTILE)
def test_cp_keeps_whiteout_names_as_files(backend, name):
    """docker cp of a tar holding ``name`` never deletes anything in the container: it is a file."""
    r = backend.docker("run", "-d", "busybox", "sh", "-c",
                       "mkdir -p /p/dst; echo a > /p/dst/keep; echo b > /p/sib; sleep 60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        backend.docker("exec", cid, "true")
        member = "sub/" + name if name == ".wh." else name  # a bare ".wh." is how tars spell "./"
        r = _cp_in(backend, cid, "/p/dst", tar_of([("sub", "dir", None), (member, "file", b"x\n")]))
        assert r.returncode == 0, r.stderr
        r = backend.docker("exec", cid, "sh", "-c", "cat /p/dst/keep /p/sib; ls -a /p/dst /p/dst/sub")
        assert r.returncode == 0, r.stderr
        out = r.stdout.split()
        assert out[:2] == ["a", "b"], r.stdout
        assert member.rsplit("/", 1)[-1] in out, r.stdout  # kept as the file it is, as docker does
    finally:
        backend.docker("rm", "-f", cid)


def test_build_context_keeps_whiteout_files(backend, tmp_path):
    """A build context's ``.wh.keep`` never deletes the context's ``keep`` (docker applies no
    whiteout to a context). dockerd then drops ``.wh.keep`` itself when it commits the COPY's
    layer (its differ reads the name as a whiteout); ours keeps it: not asserted either way."""
    (tmp_path / "keep").write_text("k\n")
    (tmp_path / ".wh.keep").write_text("w\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx > /list\n")
    tag = "hb-wh-ctx-%s" % backend.name
    r = subprocess.run(["docker", "build", "-q", "-t", tag, str(tmp_path)], capture_output=True, text=True,
                       timeout=300, env=backend.env(DOCKER_BUILDKIT="0"))
    assert r.returncode == 0, r.stderr
    try:
        r = backend.docker("run", "--rm", tag, "cat", "/list", "/ctx/keep")
        assert r.returncode == 0, r.stderr
        assert "keep" in r.stdout.split() and r.stdout.split()[-1] == "k"
    finally:
        backend.docker("rmi", "-f", tag)


@pytest.mark.parametrize("name", [".wh..", ".wh...", ".wh."])
def test_layer_whiteout_of_dot_or_dotdot_is_refused_or_harmless(backend, busybox_rootfs_tar, name):
    """``docker import`` of a layer whose whiteout names ``.``/``..``: refused, or the files stay."""
    data = tar_of([("a", "dir", None), ("a/f", "file", b"inner\n"), ("a/b", "dir", None),
                   ("a/b/" + name, "file", b""), ("top", "file", b"t\n")], base=busybox_rootfs_tar)
    tag = "hb-wh-layer-%s" % backend.name
    r = subprocess.run(["docker", "import", "-", tag], input=data, capture_output=True, timeout=120,
                       env=backend.env())
    if r.returncode != 0:
        return  # refused: the safe outcome (ours names the member)
    try:
        r = backend.docker("run", "--rm", tag, "cat", "/a/f", "/top")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["inner", "t"]
    finally:
        backend.docker("rmi", "-f", tag)


def test_layer_whiteout_error_names_the_member(engine, busybox_rootfs_tar):
    """Ours refuses with a one-line 400 that names the member (dockerd fails on mknod)."""
    data = tar_of([("a", "dir", None), ("a/.wh...", "file", b"")], base=busybox_rootfs_tar)
    r = subprocess.run(["docker", "import", "-", "hb-wh-bad"], input=data, capture_output=True, timeout=120,
                       env=dict(os.environ, DOCKER_HOST=engine.url))
    assert r.returncode != 0
    assert b"a/.wh..." in r.stderr and b"whiteout" in r.stderr
