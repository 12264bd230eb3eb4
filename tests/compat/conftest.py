"""Compat tier helpers: the stock docker CLI and the docker SDK against a real engine.

Every test names its containers with a ``compat-`` prefix; ``containers`` removes what a test
left behind, so that one failing test does not disturb the next.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest


def dock(env, *args, input=None, timeout=60):
    """Run the stock ``docker`` CLI; returns the CompletedProcess (text mode)."""
    return subprocess.run(["docker"] + [str(a) for a in args], env=env, capture_output=True, text=True,
                          input=input, timeout=timeout)


def ok(env, *args, **kw):
    """Run ``docker`` and require exit 0; returns stdout."""
    r = dock(env, *args, **kw)
    assert r.returncode == 0, "docker %s: rc=%d\n%s" % (" ".join(map(str, args)), r.returncode, r.stderr)
    return r.stdout


class PtySession:
    """The docker CLI on a real pseudo-terminal, driven like a user typing into it."""

    def __init__(self, env, args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec the CLI with the pty as its terminal
            try:
                os.execvpe("docker", ["docker"] + list(args), env)
            finally:
                os._exit(127)
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""

    def read_until(self, token: bytes, timeout=10.0) -> bytes:
        """Read until ``token`` shows up in the output (or fail after ``timeout`` s)."""
        end = time.monotonic() + timeout
        while token not in self.out:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %r; got %r" % (token, self.out[-500:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError("EOF waiting for %r; got %r" % (token, self.out[-500:]))
                self.out += data
        return self.out

    def send(self, text: str):
        os.write(self.fd, text.encode())

    def wait(self, timeout=20.0) -> int:
        """Drain output until the CLI exits; return its exit code."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._drain()
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                self._drain()
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError("docker did not exit; output %r" % self.out[-500:])

    def _drain(self):
        try:
            while select.select([self.fd], [], [], 0)[0]:
                data = os.read(self.fd, 65536)
                if not data:
                    break
                self.out += data
        except OSError:
            pass


@pytest.fixture
def env(docker_env):
    return docker_env


@pytest.fixture(autouse=True)
def containers(engine):
    """Remove the ``compat-*`` containers a test leaves behind."""
    yield
    status, cs = engine.request("GET", "/containers/json?all=1")
    for c in cs if status == 200 else []:
        if any(n.startswith("/compat-") for n in c["Names"]):
            for _ in range(3):  # a container restarting under a policy may need a second try
                if engine.request("DELETE", "/containers/%s?force=1" % c["Id"])[0] in (204, 404):
                    break
                time.sleep(0.5)


@pytest.fixture
def sdk(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=engine.url, timeout=60)
    yield client
    client.close()
