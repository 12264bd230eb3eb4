"""CLI tests: hostbridge and the stock docker CLI side by side against the same real engine.

``backend`` runs each test against Debian's dockerd (started here on a private socket, no bridge,
no iptables) and, once it is on the branch, against hostbridge's own engine (the ``engine``
fixture from tests/conftest.py).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Backend:
    """An engine endpoint plus helpers that run ``hostbridge`` and ``docker`` against it."""

    def __init__(self, name, url, home):
        self.name, self.url, self.home = name, url, home
        self.docker_config = os.path.join(home, "docker-config")
        os.makedirs(self.docker_config, exist_ok=True)

    def env(self, **extra):
        env = dict(os.environ, HOSTBRIDGE_HOST=self.url, HOSTBRIDGE_HOME=os.path.join(self.home, "hbhome"),
                   DOCKER_HOST=self.url, DOCKER_CONFIG=self.docker_config, DOCKER_CLI_HINTS="false",
                   PYTHONPATH=REPO)
        env.pop("HOSTBRIDGE_DEBUG", None)
        env.update(extra)
        return env

    def hb(self, *args, input=None, timeout=60, env=None):
        """Run ``hostbridge ARGS``; returns the CompletedProcess (text)."""
        return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), input=input,
                              capture_output=True, text=True, timeout=timeout, env=env or self.env(), cwd=REPO)

    def docker(self, *args, input=None, timeout=60):
        """Run the stock ``docker ARGS``."""
        return subprocess.run(["docker"] + list(args), input=input, capture_output=True, text=True,
                              timeout=timeout, env=self.env(), cwd=REPO)

    def same(self, *args, attempts=4):
        """Run ``args`` with both CLIs; retry when a relative time ticked over in between.

        On a busy machine the seconds may tick between the two runs every time: the results
        then carry ``stdout`` with the seconds count masked (``N seconds ago``) on both sides.

        Returns:
            ``(hostbridge_result, docker_result)``.
        """
        for _ in range(attempts):
            ours, theirs = self.hb(*args), self.docker(*args)
            if (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode):
                return ours, theirs
            time.sleep(0.3)
        ours.stdout, theirs.stdout = mask_seconds(ours.stdout), mask_seconds(theirs.stdout)
        return ours, theirs


def mask_seconds(text):
    """Replace the count in "41 seconds" with N (same width), for outputs taken a second apart."""
    return re.sub(r"\b(\d+) seconds\b", lambda m: "N" * len(m.group(1)) + " seconds", text)


def _ping(sock):
    import socket as socketmod

    s = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        return b"OK" in s.recv(4096)
    except OSError:
        return False
    finally:
        s.close()


def _unmount_under(path):
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f if line.split()[1].startswith(path + "/")]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


@contextlib.contextmanager
def running_dockerd(busybox_rootfs_tar, extra=()):
    """Debian's dockerd on a private socket and data root, with busybox:latest imported
    (``extra``: more dockerd flags, ``--userns-remap=default`` say); stopped and removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run dockerd")
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("dockerd and the docker CLI are not installed (apt-get install docker.io)")
    base = tempfile.mkdtemp(prefix="hbd", dir="/tmp")  # short: the socket path must fit 108 bytes
    os.chmod(base, 0o711)  # a remapped root reaches its layers through it
    sock = os.path.join(base, "d.sock")
    log = open(os.path.join(base, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--host", "unix://" + sock, "--data-root", os.path.join(base, "data"),
         "--exec-root", os.path.join(base, "exec"), "--pidfile", os.path.join(base, "d.pid"),
         "--bridge", "none", "--iptables=false", "--ip6tables=false"] + list(extra),
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _ping(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(base, "dockerd.log"), "rb") as f:
                    tail = f.read()[-2000:].decode("utf-8", "replace")
                pytest.fail("dockerd did not start:\n" + tail)
            time.sleep(0.2)
        backend = Backend("dockerd", "unix://" + sock, base)
        r = backend.docker("import", busybox_rootfs_tar, "busybox:latest")
        assert r.returncode == 0, r.stderr
        yield backend
    finally:
        ids = subprocess.run(["docker", "-H", "unix://" + sock, "ps", "-aq"], capture_output=True, text=True)
        if ids.stdout.split():
            subprocess.run(["docker", "-H", "unix://" + sock, "rm", "-f"] + ids.stdout.split(), capture_output=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dockerd(busybox_rootfs_tar):
    """Debian's dockerd on a private socket and data root, with busybox:latest imported."""
    with running_dockerd(busybox_rootfs_tar) as backend:
        yield backend


@pytest.fixture(params=["dockerd", "engine"])
def backend(request, tmp_path_factory):
    """Each test once against dockerd and once against hostbridge's engine."""
    if request.param == "dockerd":
        return request.getfixturevalue("dockerd")
    engine = request.getfixturevalue("engine")
    return Backend("engine", engine.url, str(tmp_path_factory.mktemp("hbengine")))
