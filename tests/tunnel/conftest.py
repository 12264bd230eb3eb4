"""Fixtures of the tunnel tier: the namespace "remote host" with sshd, the stand-in engine, a
machine dir pointing at both. The namespace and sshd themselves are in remotehost.py."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from remotehost import SSHD, SSHD_BIN, RemoteNamespace  # noqa: E402


@pytest.fixture(scope="session")
def remote_ns():
    """A network namespace standing in for a remote host (root only)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists(SSHD_BIN):
        pytest.skip("needs root, iproute2 and openssh-server")
    ns = RemoteNamespace()
    ns.create()
    yield ns
    ns.destroy()


_PORTS = iter(range(2200, 2400))


@pytest.fixture
def sshd(remote_ns, tmp_path):
    """A running sshd in the remote namespace; stopped (with its children) after the test."""
    d = tmp_path / "sshd"
    d.mkdir()
    server = SSHD(remote_ns, str(d), next(_PORTS)).start()
    yield server
    server.stop()


@pytest.fixture
def hb_home(tmp_path, monkeypatch):
    """HOSTBRIDGE_HOME in tmp, so machine dirs, known_hosts and agent files stay in the test."""
    home = tmp_path / "hbhome"
    home.mkdir()
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(home))
    return str(home)


@pytest.fixture
def standin(tmp_path):
    """The stand-in engine on a unix socket in tmp (reachable by the namespace's sshd:
    the namespace shares the filesystem)."""
    from standin_engine import StandinEngine

    eng = StandinEngine(str(tmp_path / "engine.sock"))
    yield eng
    eng.close()


@pytest.fixture
def machine(hb_home, sshd, standin):
    """A machine dir whose tunnel.json points at the sshd and the stand-in engine; the host key
    pinned. Yields MachinePaths; stops any agent it started afterwards."""
    from hostbridge.tunnel import control
    from hostbridge.tunnel.known_hosts import KnownHosts
    from hostbridge.tunnel.machinepaths import MachinePaths
    from hostbridge.tunnel.ssh import Connection, SSHTarget

    paths = MachinePaths.for_name("far")
    os.makedirs(paths.dir)
    target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    with Connection(target, KnownHosts(paths.known_hosts), accept_host_keys=sshd.host_fingerprint):
        pass
    control.write_config(paths, {"ssh": target.to_dict(), "remote_socket": standin.path,
                                 "endpoint": "unix", "forward_ports": True, "keepalive": 5})
    yield paths
    control.stop_agent(paths)
