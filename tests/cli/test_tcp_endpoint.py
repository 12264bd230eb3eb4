"""A tcp://127.0.0.1:N endpoint (what the tunnel serves where unix sockets are not an option).

socat relays a loopback port to the engine's socket; hostbridge talks plain HTTP over TCP,
including the hijacked attach that ``run`` uses.
"""

import shutil
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def tcp_url(backend):
    if not shutil.which("socat"):
        pytest.skip("socat is not installed (apt-get install socat)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sock_path = backend.url[len("unix://"):]
    relay = subprocess.Popen(["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port,
                              "UNIX-CONNECT:%s" % sock_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("socat did not listen on 127.0.0.1:%d" % port)
                time.sleep(0.05)
        yield "tcp://127.0.0.1:%d" % port
    finally:
        relay.terminate()
        relay.wait(10)


def test_commands_over_tcp(backend, tcp_url):
    env = backend.env(HOSTBRIDGE_HOST=tcp_url)
    r = backend.hb("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo over-tcp; exit 7", env=env)
    assert (r.returncode, r.stdout) == (7, "over-tcp\n"), r.stderr
    ours, theirs = backend.hb("images", env=env), backend.docker("images")
    assert ours.stdout == theirs.stdout
    assert backend.hb("version", env=env).stdout.endswith(theirs_server(backend))


def theirs_server(backend):
    out = backend.docker("version").stdout
    return out[out.index("Server:"):]
