"""Remote mode end to end with the real engine: the stock docker CLI through the tunnel."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from remotehost import free_local_port

from hostbridge import deploy
from hostbridge.tunnel import control
from hostbridge.paths import MachinePaths
from hostbridge.machines import remote

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("docker"), reason="needs the stock docker CLI (docker.io)")]


@pytest.fixture
def build1(hb_home, sshd, tmp_path):
    rec = remote.add_remote("build1", sshd.url(), identity=sshd.user_key, accept_host_key=sshd.host_fingerprint,
                            remote_dir=str(tmp_path / "remote"), start="daemon", shim="never")
    env = dict(os.environ, DOCKER_HOST=rec["endpoint_url"], DOCKER_CONFIG=str(tmp_path / "dockercfg"))
    yield rec, env
    subprocess.run(["docker", "rm", "-f", "e2e-web", "e2e-logs"], env=env, capture_output=True, timeout=60)
    remote.remove_remote("build1", stop_engine=True)


def _docker(env, *args, timeout=120):
    return subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True, timeout=timeout)


def test_docker_cli_runs_containers_and_published_ports_reach_host_loopback(build1, busybox_rootfs_tar):
    _rec, env = build1
    assert _docker(env, "import", busybox_rootfs_tar, "busybox:latest").returncode == 0
    out = _docker(env, "run", "--rm", "busybox", "echo", "hi through the tunnel")
    assert (out.returncode, out.stdout) == (0, "hi through the tunnel\n"), out.stderr
    port = free_local_port()
    out = _docker(env, "run", "-d", "--name", "e2e-web", "-p", "%d:8080" % port, "busybox", "sh", "-c",
                  "echo hello-from-container > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    assert out.returncode == 0, out.stderr
    body, deadline = b"", time.monotonic() + 10
    while not body.endswith(b"hello-from-container\n") and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                body = b"".join(iter(lambda: c.recv(4096), b""))
        except OSError:
            time.sleep(0.01)
    assert body.endswith(b"hello-from-container\n")
    assert _docker(env, "rm", "-f", "e2e-web").returncode == 0
    deadline = time.monotonic() + 5
    while port in control.tunnel_status(MachinePaths.for_name("build1"))["forwards"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert port not in control.tunnel_status(MachinePaths.for_name("build1"))["forwards"]


def test_cut_link_during_logs_follow_then_next_command_works(build1, busybox_rootfs_tar, sshd):
    _rec, env = build1
    assert _docker(env, "import", busybox_rootfs_tar, "busybox:latest").returncode == 0
    assert _docker(env, "run", "-d", "--name", "e2e-logs", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done").returncode == 0
    follow = subprocess.Popen(["docker", "logs", "-f", "e2e-logs"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        assert follow.stdout.readline().startswith(b"tick ")
        sshd.kill_connections()
        follow.wait(20)  # the stream ends (with an error) once the link is gone
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
    out = _docker(env, "ps", "--format", "{{.Names}}")
    assert out.returncode == 0 and "e2e-logs" in out.stdout.split(), out.stderr
    assert control.tunnel_status(MachinePaths.for_name("build1"))["reconnects"] >= 1


def test_an_engine_that_died_is_started_again_by_the_next_command(build1):
    rec, env = build1
    paths = MachinePaths.for_name("build1")
    layout = deploy.Layout.from_dict(rec["layout"])
    with remote._connection(rec, paths) as conn:
        deploy.stop_engine(conn, layout)  # as after a reboot of a host without systemd
    control.stop_agent(paths)
    url = remote.endpoint_for("build1")
    out = _docker(dict(env, DOCKER_HOST=url), "version", "--format", "{{.Server.Version}}")
    assert out.returncode == 0 and out.stdout.strip() == deploy.engine_version(), out.stderr
