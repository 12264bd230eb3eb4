"""docker commit of a running container: paused by default, and never a host file in the layer.

A running container swaps files and directories of its own tree for symlinks to a host path
while the test commits it (N times); the images are then saved and no layer may hold the
host's bytes. ``--pause=false`` is the worst case: nothing but the walk by descriptors keeps
the host's files out.
"""

import io
import os
import subprocess
import tarfile
import time

import pytest

from tests.security.racer import swapper  # noqa: F401  (fixture)

SECRET = b"host-secret-for-commit\n"
NEEDLE = SECRET[:15]  # a container file of 15 bytes read through a swapped link yields these
COMMITS, SECONDS = 12, 60


@pytest.fixture
def sentinel(tmp_path):
    d = tmp_path / "hostside"
    d.mkdir()
    (d / "secret").write_bytes(SECRET)
    return d / "secret"


def _layer_files(backend, image):
    """(name, bytes) of every regular file in every layer of ``image`` (docker save)."""
    r = subprocess.run(["docker", "save", image], capture_output=True, timeout=120, env=backend.env())
    assert r.returncode == 0, r.stderr
    layers = 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as outer:
        for m in outer:
            if not m.isreg() or m.name.endswith((".json", "repositories")):
                continue
            try:
                layer = tarfile.open(fileobj=io.BytesIO(outer.extractfile(m).read()))
            except tarfile.TarError:
                continue  # not a layer (docker save's other blobs)
            layers += 1
            with layer:
                for lm in layer:
                    if lm.isreg():
                        yield lm.name, layer.extractfile(lm).read()
    assert layers, "no layer found in docker save's output"


def _layers_hold(backend, image, needle):
    """The member of a layer of ``image`` that holds ``needle``, or None."""
    for name, data in _layer_files(backend, image):
        if needle in data:
            return name
    return None


@pytest.mark.parametrize("pause", ["true", "false"])
def test_commit_of_a_swapping_container_never_reads_host_files(backend, sentinel, swapper, pause):
    pairs = []
    for i in range(4):  # a file and a directory, each swapped with a symlink to the host's
        pairs.append("echo inside-the-box > /w/f%d; ln -s %s /w/fl%d; /swapper /w/f%d /w/fl%d 50000000 &"
                     % (i, sentinel, i, i, i))
        pairs.append("mkdir -p /w/d%d; echo inside > /w/d%d/secret; ln -s %s /w/dl%d; "
                     "/swapper /w/d%d /w/dl%d 50000000 &" % (i, i, sentinel.parent, i, i, i))
    script = "mkdir -p /w; %s wait" % " ".join(pairs)
    r = backend.docker("run", "-d", "-v", swapper + ":/swapper:ro", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    images = []
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + SECONDS
        for i in range(COMMITS):
            if time.monotonic() > deadline:
                break
            tag = "hb-commit-race-%s-%s:%d" % (backend.name, pause, i)
            r = backend.docker("commit", "--pause=" + pause, cid, tag)
            if r.returncode == 0:
                images.append(tag)
        assert images, "no commit succeeded"
        for tag in images:
            leaked = _layers_hold(backend, tag, NEEDLE)
            if leaked and backend.name == "dockerd" and pause == "false":
                pytest.xfail("dockerd 20.10 with --pause=false put a host file into the layer (%s): "
                             "its diff follows a link swapped in; ours walks by descriptors" % leaked)
            assert leaked is None, "a host file went into %s" % tag
    finally:
        backend.docker("rm", "-f", cid)
        if images:
            backend.docker("rmi", "-f", *images)


@pytest.mark.parametrize("pause", ["true", "false"])
def test_commit_pauses_the_container_by_default(backend, pause):
    """While the diff is taken the container is frozen: a file it rewrites in place all the time
    (a's, then b's) is committed as one of them, never torn. Unpaused (``--pause=false``) a
    torn file or a failed commit is allowed, and is what the pause is there to prevent."""
    script = ("mkdir -p /w; i=0; while [ $i -lt 3000 ]; do for c in a b; do "
              "tr '\\0' $c < /dev/zero | head -c 1000000 > /w/big; done; i=$((i+1)); done")
    r = backend.docker("run", "-d", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    images, torn = [], 0
    try:
        time.sleep(0.5)
        for i in range(6):
            tag = "hb-commit-pause-%s-%s:%d" % (backend.name, pause, i)
            r = backend.docker("commit", "--pause=" + pause, cid, tag)
            if pause == "true":
                assert r.returncode == 0, r.stderr
            if r.returncode == 0:
                images.append(tag)
            r = backend.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", cid)
            assert r.stdout.split() == ["running", "false"]  # thawed after, and never marked paused
        for tag in images:
            big = [data for name, data in _layer_files(backend, tag) if name == "w/big"]
            if big and len(set(big[-1])) > 1:
                torn += 1
        if pause == "true":
            assert torn == 0, "a file was committed torn: the container was not paused"
    finally:
        backend.docker("rm", "-f", cid)
        if images:
            backend.docker("rmi", "-f", *images)
    print("%s --pause=%s: %d of %d commits torn" % (backend.name, pause, torn, len(images)))


def test_commit_keeps_a_user_pause(backend):
    r = backend.docker("run", "-d", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        assert backend.docker("pause", cid).returncode == 0
        r = backend.docker("commit", cid, "hb-commit-paused-%s" % backend.name)
        assert r.returncode == 0, r.stderr
        r = backend.docker("inspect", "-f", "{{.State.Status}}", cid)
        assert r.stdout.strip() == "paused"
        r = subprocess.run(["docker", "exec", cid, "true"], capture_output=True, text=True, timeout=30,
                           env=backend.env())
        assert r.returncode != 0 and "paused" in r.stderr  # still frozen after the commit
        assert backend.docker("unpause", cid).returncode == 0
    finally:
        backend.docker("rm", "-f", cid)
        backend.docker("rmi", "-f", "hb-commit-paused-%s" % backend.name)


def test_diff_of_a_swapping_container_never_lists_host_names(backend, sentinel, swapper):
    """docker diff walks the same upper dir: a directory flipping with a link to a host dir
    must never have the host directory's entries listed."""
    unique = sentinel.parent / ("hostonly-%d" % os.getpid())
    unique.write_text("x\n")
    script = ("mkdir -p /w/d; echo in > /w/d/inside; ln -s %s /w/l; /swapper /w/d /w/l 50000000"
              % sentinel.parent)
    r = backend.docker("run", "-d", "-v", swapper + ":/swapper:ro", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        time.sleep(0.3)
        seen = 0
        for _ in range(COMMITS * 2):
            r = backend.docker("diff", cid)
            if r.returncode == 0:
                seen += 1
                if unique.name in r.stdout and backend.name == "dockerd":
                    pytest.xfail("dockerd 20.10's docker diff listed a host directory's entries through "
                                 "a link swapped in (its walk follows it); ours walks by descriptors")
                assert unique.name not in r.stdout, r.stdout
        assert seen, "docker diff never answered"
    finally:
        backend.docker("rm", "-f", cid)
