"""``docker exec -t`` never opens a host file through a symlink the container put at /dev/ptmx.

The engine opens the exec's pty in the container's devpts from its own side; the container
replaces ``/dev/ptmx`` with an absolute symlink to a host file. An inotify watch on that host
file (the kernel's own record of every open) must see no open.
"""

import ctypes
import os

import pytest

_IN_OPEN = 0x20


class OpenWatch:
    """inotify IN_OPEN on one path (the kernel reports each open of it)."""

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, str(path).encode(), _IN_OPEN) >= 0

    def opened(self) -> bool:
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self):
        os.close(self.fd)


@pytest.fixture
def host_file(tmp_path):
    f = tmp_path / "hostside" / "device-like"
    f.parent.mkdir()
    f.write_text("host\n")
    return f


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_exec_tty_does_not_open_host_path_behind_dev_ptmx(backend, host_file, link):
    # relative: ``..`` past the container's root, which a walk through /proc/PID/root allows
    target = str(host_file) if link == "absolute" else "../" * 20 + str(host_file).lstrip("/")
    setup = "rm -f /dev/ptmx; ln -s %s /dev/ptmx" % target
    r = backend.docker("run", "-d", "busybox", "sh", "-c", setup + "; sleep 60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    watch = OpenWatch(host_file)
    try:
        backend.docker("exec", cid, "true")  # the setup has run once exec works
        for _ in range(3):
            backend.docker("exec", "-t", cid, "true")
        assert not watch.opened(), "exec -t opened the host file behind the container's /dev/ptmx"
        assert host_file.read_text() == "host\n"
    finally:
        watch.close()
        backend.docker("rm", "-f", cid)


def test_exec_tty_still_gets_a_pty_of_the_container(backend):
    r = backend.docker("run", "-d", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        r = backend.docker("exec", "-t", cid, "tty")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().startswith("/dev/pts/")
    finally:
        backend.docker("rm", "-f", cid)
