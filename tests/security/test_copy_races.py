"""docker cp against a container that races it: swapping names for symlinks to host paths.

CVE-2018-15664's class: the engine resolves a path in the container, then acts on it by path;
a running container swaps a component (or the entry just written) for a symlink to a host
path in between, and the engine reads, writes or chmods the host's file. Each attempt here
runs a bounded loop in the container (N iterations) while the test runs ``docker cp``
repeatedly (N times or T seconds), then checks a sentinel on the host, outside any container,
by content, mode and mtime.
"""

import os
import subprocess
import time

import pytest

from tests.security.racer import swapper  # noqa: F401  (fixture)
from tests.security.tars import tar_of

SECRET = b"host-secret-do-not-touch\n"
ROUNDS, SECONDS = 100, 25  # docker cp runs per test, and the time they may take at most


@pytest.fixture
def sentinel(tmp_path):
    """A host directory with a file the containers will point symlinks at."""
    d = tmp_path / "hostside"
    d.mkdir(mode=0o700)
    f = d / "secret"
    f.write_bytes(SECRET)
    os.chmod(f, 0o600)
    os.utime(f, ns=(10 ** 18, 10 ** 18))
    os.chmod(d, 0o700)
    return f


def _state(path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_mode, st.st_uid, st.st_mtime_ns


def _host_untouched(sentinel, before):
    assert _state(sentinel) == before, "a host file was changed through the container"
    assert sorted(os.listdir(sentinel.parent)) == ["secret"], "a file was written on the host"


def _run_racer(backend, script, swapper=None):
    extra = ["-v", swapper + ":/swapper:ro"] if swapper else []
    r = backend.docker("run", "-d", *extra, "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _cp_in(backend, cid, dest, data):
    return subprocess.run(["docker", "cp", "-", "%s:%s" % (cid, dest)], input=data, capture_output=True,
                          timeout=60, env=backend.env())


def _cp_out(backend, cid, src):
    return subprocess.run(["docker", "cp", "%s:%s" % (cid, src), "-"], capture_output=True,
                          timeout=60, env=backend.env())


def _rounds(fn):
    deadline = time.monotonic() + SECONDS
    for _ in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        fn()


def test_cp_in_swapped_entry_does_not_chmod_host_file(backend, sentinel, swapper):
    """The entry just written is swapped for a symlink to a host file before its mode is set."""
    before = _state(sentinel)
    names = ["f%d" % i for i in range(20)]
    swaps = " ".join("ln -s %s /dst/l%d; /swapper /dst/f%d /dst/l%d 20000000 &" % (sentinel, i, i, i)
                     for i in range(4))
    script = ("mkdir -p /dst; %s i=0; while [ $i -lt 20000 ]; do for n in %s; do rm -f /dst/$n; "
              "ln -s %s /dst/$n; done; i=$((i+1)); done" % (swaps, " ".join(names[4:]), sentinel))
    cid = _run_racer(backend, script, swapper)
    try:
        time.sleep(0.3)
        data = tar_of([(n, "file", b"pwned\n", 0o4777) for n in names] + [("d%d" % i, "dir", None, 0o777) for i in range(5)])
        _rounds(lambda: _cp_in(backend, cid, "/dst", data))
    finally:
        backend.docker("rm", "-f", cid)
    _host_untouched(sentinel, before)


def test_cp_in_swapped_directory_does_not_write_host(backend, sentinel, swapper):
    """The destination's subdirectory flips between a directory and a symlink to a host dir."""
    before = _state(sentinel)
    script = "mkdir -p /w/d; ln -s %s /w/l; /swapper /w/d /w/l 50000000" % sentinel.parent
    cid = _run_racer(backend, script, swapper)
    try:
        time.sleep(0.3)
        data = tar_of([("secret", "file", b"pwned\n", 0o777), ("new", "file", b"pwned\n", 0o777)])
        nested = tar_of([("d", "dir", None, 0o777), ("d/secret", "file", b"pwned\n", 0o777), ("d/new", "file", b"pwned\n", 0o777)])

        def once():
            _cp_in(backend, cid, "/w/d", data)
            _cp_in(backend, cid, "/w/d/", data)
            _cp_in(backend, cid, "/w", nested)
        _rounds(once)
    finally:
        backend.docker("rm", "-f", cid)
    _host_untouched(sentinel, before)


def test_cp_out_swapped_directory_does_not_read_host(backend, sentinel, swapper):
    """Copying out of a directory that flips to a symlink to a host dir never yields host bytes."""
    before = _state(sentinel)
    script = ("mkdir -p /w/d; echo inside > /w/d/secret; ln -s %s /w/l; echo inside > /w/f; ln -s %s /w/fl; "
              "/swapper /w/d /w/l 50000000 & /swapper /w/f /w/fl 50000000 & wait"
              % (sentinel.parent, sentinel))
    cid = _run_racer(backend, script, swapper)
    leaked = []
    try:
        time.sleep(0.3)

        def once():
            for src in ("/w/d/secret", "/w/d", "/w/d/", "/w/f", "/w"):
                r = _cp_out(backend, cid, src)
                if SECRET.strip() in r.stdout:
                    leaked.append(src)
        _rounds(once)
    finally:
        backend.docker("rm", "-f", cid)
    assert not leaked, "docker cp read the host's file through %s" % leaked
    _host_untouched(sentinel, before)


def test_cp_out_symlink_to_host_path_stays_in_container(backend, sentinel):
    """A plain (unraced) absolute symlink is resolved in the container, as docker does."""
    r = backend.docker("run", "-d", "busybox", "sh", "-c", "ln -s %s /leak; ln -s %s /leakdir; sleep 60"
                       % (sentinel, sentinel.parent))
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        for src in ("/leak", "/leakdir/", "/leakdir/secret"):
            out = _cp_out(backend, cid, src)
            assert SECRET.strip() not in out.stdout, src
    finally:
        backend.docker("rm", "-f", cid)
