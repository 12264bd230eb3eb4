"""The tunnel agent against a real sshd in a namespace and the real engine running there."""

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest
from remotehost import free_local_port

from hostbridge.deploy import engine_version
from hostbridge.tunnel import control
from hostbridge.tunnel.errors import HostKeyError, SSHUnreachable
from hostbridge.tunnel.localhttp import connection, request

pytestmark = pytest.mark.root


def get(endpoint: str, path: str, timeout: float = 10) -> tuple:
    """GET ``path``; returns (status, body bytes)."""
    return request(endpoint, "GET", path, timeout)


def far_container(far_engine, busybox_rootfs_tar, cmd, ports=(), tty=False):
    """Create and start a busybox container in the far engine; its id. ``ports`` are published
    on the same port number (0.0.0.0 of the far side)."""
    eng = far_engine.engine
    if eng.request("GET", "/images/busybox:latest/json")[0] != 200:
        eng.import_tar(busybox_rootfs_tar, "busybox:latest")
    body = {"Image": "busybox:latest", "Cmd": list(cmd), "Tty": tty,
            "ExposedPorts": {"%d/tcp" % p: {} for p in ports},
            "HostConfig": {"PortBindings": {"%d/tcp" % p: [{"HostPort": str(p)}] for p in ports}}}
    st, created = eng.request("POST", "/containers/create", body)
    assert st == 201, created
    st, out = eng.request("POST", "/containers/%s/start" % created["Id"])
    assert st == 204, out
    return created["Id"]


def wait_for_subscription(far_engine, timeout=10) -> set:
    """The agent's /events subscription: wait (bounded) until the engine holds exactly one
    connection (nothing else is in flight); return its inode set."""
    deadline = time.monotonic() + timeout
    while len(far_engine.connections()) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    conns = far_engine.connections()
    assert len(conns) == 1, conns
    return conns


def test_agent_serves_http_through_streamlocal(machine, far_engine):
    url = control.ensure_agent(machine, timeout=20)
    path = url[len("unix://"):]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path) <= 100
    assert get(url, "/_ping") == (200, b"OK")
    status = control.tunnel_status(machine)
    assert status["state"] == "connected" and status["alive"] and status["channel_mode"] == "streamlocal"
    # A second call finds the running agent.
    assert control.ensure_agent(machine) == url
    assert control.tunnel_status(machine)["pid"] == status["pid"]


def test_relay_fallback_when_streamlocal_is_refused(machine, far_engine, sshd):
    sshd.restart(streamlocal=False)
    url = control.ensure_agent(machine, timeout=20)
    assert get(url, "/_ping") == (200, b"OK")
    st, body = get(url, "/version")
    assert st == 200 and json.loads(body)["ApiVersion"] == "1.44"
    assert control.tunnel_status(machine)["channel_mode"] == "relay"


def test_a_tcp_endpoint_is_never_served(machine, far_engine):
    # An open 127.0.0.1 port would let any local user or web page be root on the engine: an
    # old tunnel.json asking for one gets the private unix socket instead.
    cfg = control.read_json(machine.tunnel_json)
    cfg["endpoint"], cfg["tcp_port"], cfg["forward_ports"] = "tcp", 0, False
    control.write_config(machine, cfg)
    url = control.ensure_agent(machine, timeout=20)
    assert url == "unix://" + machine.agent_socket
    assert os.stat(machine.agent_socket).st_mode & 0o777 == 0o600
    assert get(url, "/_ping") == (200, b"OK")
    pid = control.read_status(machine)["pid"]
    with open("/proc/net/tcp") as f:
        inodes = {line.split()[9] for line in f.readlines()[1:] if line.split()[3] == "0A"}  # LISTEN
    fds = os.listdir("/proc/%d/fd" % pid)
    socks = {os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in fds if fd.isdigit()}
    assert not {"socket:[%s]" % i for i in inodes} & socks  # the agent listens on no TCP port


def test_two_starters_at_once_share_one_agent(machine, far_engine):
    results, errors = [], []

    def start():
        try:
            results.append(control.ensure_agent(machine, timeout=20))
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 2 and results[0] == results[1]
    # The loser may still be importing when the winner serves; it exits once it sees the lock.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        agents = subprocess.run(["pgrep", "-f", "hostbridge.tunnel.agent " + machine.dir],
                                capture_output=True, text=True).stdout.split()
        if len(agents) == 1:
            break
        time.sleep(0.05)
    assert agents == [str(control.tunnel_status(machine)["pid"])]
    for url in results:
        assert get(url, "/_ping") == (200, b"OK")


def test_agent_reconnects_after_the_link_is_cut_mid_stream(machine, far_engine, sshd, busybox_rootfs_tar):
    cid = far_container(far_engine, busybox_rootfs_tar, ["sh", "-c", "i=0; while [ $i -lt 600 ]; do "
                                                         "echo line $i; i=$((i+1)); sleep 0.05; done"], tty=True)
    url = control.ensure_agent(machine, timeout=20)
    c = connection(url, timeout=10)
    c.request("GET", "/containers/%s/logs?follow=1&stdout=1" % cid)
    r = c.getresponse()
    assert r.status == 200 and r.readline().startswith(b"line 0")
    sshd.kill_connections()  # the sshd child serving the agent dies: the link drops mid-stream
    with pytest.raises(Exception):
        for _ in range(1000):  # bounded; the stream ends or errors once the link is gone
            if not r.readline():
                raise EOFError
    c.close()
    deadline = time.monotonic() + 15
    while control.tunnel_status(machine).get("reconnects", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(url, "/_ping") == (200, b"OK")
    assert control.tunnel_status(machine)["reconnects"] >= 1


def test_dead_agent_is_restarted_by_the_next_command(machine, far_engine):
    url = control.ensure_agent(machine, timeout=20)
    pid = control.tunnel_status(machine)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while control.agent_alive(machine) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert control.ensure_agent(machine, timeout=20) == url
    assert control.tunnel_status(machine)["pid"] != pid
    assert get(url, "/_ping") == (200, b"OK")


def test_agent_reports_a_changed_host_key(machine, sshd):
    sshd.regenerate_host_key()
    with pytest.raises(HostKeyError) as ei:
        control.ensure_agent(machine, timeout=20)
    assert ei.value.got == sshd.host_fingerprint and "CHANGED" in str(ei.value)
    assert control.tunnel_status(machine)["state"] == "failed"


def test_missing_engine_socket_gives_a_docker_style_error(machine, far_engine):
    url = control.ensure_agent(machine, timeout=20)
    assert get(url, "/_ping") == (200, b"OK")
    far_engine.close()
    st, body = get(url, "/_ping")
    assert st == 502 and b"cannot reach the engine" in body


def test_published_port_is_forwarded_to_host_loopback(machine, far_engine, busybox_rootfs_tar):
    port = free_local_port()
    control.ensure_agent(machine, timeout=20)
    subscription = wait_for_subscription(far_engine)
    # a container of the far engine publishing the port: a TCP server answering "far side <what it read>"
    cid = far_container(far_engine, busybox_rootfs_tar, ["sh", "-c", "while true; do echo far side | "
                                                         "nc -l -p %d; done" % port], ports=[port])
    reply, deadline = None, time.monotonic() + 10
    while not reply and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                reply = s.recv(64)
        except OSError:
            time.sleep(0.05)
    assert reply == b"far side\n"
    assert port in control.tunnel_status(machine)["forwards"]
    assert far_engine.engine.request("POST", "/containers/%s/kill" % cid)[0] == 204
    deadline = time.monotonic() + 10
    while port in control.tunnel_status(machine)["forwards"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert port not in control.tunnel_status(machine)["forwards"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    # event-driven: both changes came over the first /events stream, the connection the engine
    # held before them, still open: not by subscribing again
    assert subscription <= far_engine.connections()


def test_port_clash_on_the_host_is_reported_not_fatal(machine, far_engine, busybox_rootfs_tar):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        url = control.ensure_agent(machine, timeout=20)
        wait_for_subscription(far_engine)
        far_container(far_engine, busybox_rootfs_tar, ["sleep", "1000"], ports=[port])
        deadline = time.monotonic() + 10
        while not control.tunnel_status(machine).get("forward_clashes") and time.monotonic() < deadline:
            time.sleep(0.02)
        clashes = control.tunnel_status(machine)["forward_clashes"]
        assert len(clashes) == 1 and "127.0.0.1:%d in use" % port in clashes[0]
        assert get(url, "/_ping") == (200, b"OK")
    finally:
        busy.close()


def test_stock_docker_cli_through_the_agent(machine, far_engine, tmp_path):
    import shutil

    if not shutil.which("docker"):
        pytest.skip("needs the stock docker CLI (docker.io)")
    url = control.ensure_agent(machine, timeout=20)
    out = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, DOCKER_HOST=url, DOCKER_CONFIG=str(tmp_path / "dcfg")))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.44"


def test_tunnel_status_command(machine, far_engine):
    from click.testing import CliRunner

    from hostbridge.cli.remote import tunnel_group

    out = CliRunner().invoke(tunnel_group, ["status", "far"]).output
    assert "state:       stopped (no agent running)" in out
    url = control.ensure_agent(machine, timeout=20)
    out = CliRunner().invoke(tunnel_group, ["status", "far"]).output
    assert "state:       connected" in out and "endpoint:    %s" % url in out
    assert machine.agent_log in out


def test_a_silently_dead_link_is_noticed_and_replaced(machine, far_engine, sshd):
    cfg = control.read_json(machine.tunnel_json)
    cfg["keepalive"] = 1
    control.write_config(machine, cfg)
    url = control.ensure_agent(machine, timeout=20)
    frozen = sshd.children()
    assert frozen
    for pid in frozen:  # the server stops answering but its TCP socket stays open: no RST, no FIN
        os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while control.tunnel_status(machine).get("reconnects", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert control.tunnel_status(machine)["reconnects"] >= 1
        assert get(url, "/_ping") == (200, b"OK")
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_env_and_docker_context_for_a_remote_machine(machine, far_engine, tmp_path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    from hostbridge.cli.env import env_command
    from hostbridge.cli.remote import context_group
    from hostbridge.machines import remote

    if not shutil.which("docker"):
        pytest.skip("needs the stock docker CLI (docker.io)")
    # the far engine is this checkout's: up to date, so endpoint_for must not try to upgrade it
    assert json.loads(get(control.ensure_agent(machine, timeout=20), "/version")[1])["Version"] == engine_version()
    remote.save_record(machine, {"name": "far", "mode": "remote", "url": "ssh://x", "ssh": {}, "layout": {}})
    out = CliRunner().invoke(env_command, ["--shell", "fish", "far"]).output
    url = control.endpoint_url(machine)
    assert out.splitlines()[0] == "set -gx DOCKER_HOST '%s';" % url
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dcfg"))
    res = CliRunner().invoke(context_group, ["create", "far"])
    assert res.exit_code == 0, res.output
    out = subprocess.run(["docker", "--context", "hostbridge-far", "version", "--format", "{{.Server.Version}}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == engine_version(), out.stderr


def test_an_engine_socket_that_appears_during_the_check_is_no_refusal(machine, far_engine):
    # `up` starts the agent while the engine starts: a first channel fails on a socket not
    # there yet, which is there by the time the agent looks. Streamlocal stays (a relay mode
    # would start a Python relay in the guest for every connection).
    from hostbridge.tunnel.agent import Agent

    hidden = far_engine.path + ".not-yet"
    os.rename(far_engine.path, hidden)

    class EngineStartsListening(Agent):
        def _remote_socket_exists(self, transport):
            os.rename(hidden, far_engine.path)  # the engine listens just before the agent looks
            return super()._remote_socket_exists(transport)

    agent = EngineStartsListening(machine, control.read_json(machine.tunnel_json))
    agent.conn = agent.connect()
    try:
        chan = agent.open_engine()
        chan.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        reply = b""
        while True:
            data = chan.recv(4096)
            if not data:
                break
            reply += data
        chan.close()
    finally:
        agent.conn.close()
    assert reply.startswith(b"HTTP/1.") and reply.endswith(b"OK"), reply
    assert agent.mode == "streamlocal" and agent.status["channel_mode"] == "streamlocal"


def test_the_first_login_tries_again_while_nothing_listens_within_its_bound(machine, far_engine, sshd):
    # As `up` starts the agent before QEMU listens on the guest's SSH port (it loads a saved state).
    sshd.stop()
    control.write_config(machine, dict(control.read_json(machine.tunnel_json), connect_retry=30))
    later = threading.Timer(1.5, sshd.start)
    later.start()
    try:
        url = control.ensure_agent(machine, timeout=40)
    finally:
        later.join()
    assert get(url, "/_ping") == (200, b"OK")
    assert control.tunnel_status(machine)["reconnects"] == 0


def test_without_a_retry_bound_a_port_nothing_listens_on_fails_at_once(machine, sshd):
    sshd.stop()
    t0 = time.monotonic()
    with pytest.raises(SSHUnreachable):
        control.ensure_agent(machine, timeout=20)
    assert time.monotonic() - t0 < 10


def test_a_held_agent_logs_in_only_once_released(machine, far_engine):
    # As `up` holds the agent it starts while QEMU loads a saved state, until the VM runs.
    control.write_config(machine, dict(control.read_json(machine.tunnel_json), connect_retry=30, hold=True))
    control.hold(machine)
    got = []
    starter = threading.Thread(target=lambda: got.append(control.ensure_agent(machine, timeout=40)))
    starter.start()
    deadline = time.monotonic() + 10
    while not control.agent_alive(machine) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)
    assert control.tunnel_status(machine)["state"] == "connecting"
    released = time.time()
    control.release(machine)
    starter.join(40)
    assert got and get(got[0], "/_ping") == (200, b"OK")
    assert control.tunnel_status(machine)["connected_at"] >= released
