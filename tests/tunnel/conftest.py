"""Fixtures of the tunnel tier: the namespace "remote host" with sshd, the real engine running
in it, a machine dir pointing at both. The namespace and sshd themselves are in remotehost.py."""

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


class FarEngine:
    """The real engine running inside the remote namespace (its containers and published ports
    are the far side's), on a unix socket in tmp: the namespace shares the filesystem, so the
    sshd there reaches it, and so do the tests."""

    def __init__(self, ns, base):
        from tests.support.engine import Engine
        self.ns = ns
        self.engine = Engine(base, prefix=ns.prefix()).start()
        self.path = self.engine.sock

    def connections(self) -> set:
        """Inodes of the connections the engine has accepted and holds open now."""
        out = self.ns.exec("ss", "-x", "-H", "state", "connected", "src", self.path).stdout
        return {line.split()[5] for line in out.splitlines() if line.strip()}  # Netid State Recv-Q Send-Q path INODE

    def close(self):
        self.engine.close()


@pytest.fixture
def far_engine(remote_ns, tmp_path):
    """The real engine in the remote namespace (see FarEngine); stopped after the test."""
    d = tmp_path / "far-engine"
    d.mkdir()
    eng = FarEngine(remote_ns, d)
    yield eng
    eng.close()


@pytest.fixture
def machine(hb_home, sshd, far_engine):
    """A machine dir whose tunnel.json points at the sshd and the real engine behind it; the
    host key pinned. Yields MachinePaths; stops any agent it started afterwards."""
    from hostbridge.tunnel import control
    from hostbridge.tunnel.known_hosts import KnownHosts
    from hostbridge.paths import MachinePaths
    from hostbridge.tunnel.ssh import Connection, SSHTarget

    paths = MachinePaths.for_name("far")
    os.makedirs(paths.dir)
    target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    with Connection(target, KnownHosts(paths.known_hosts), accept_host_keys=sshd.host_fingerprint):
        pass
    control.write_config(paths, {"ssh": target.to_dict(), "remote_socket": far_engine.path,
                                 "endpoint": "unix", "forward_ports": True, "keepalive": 5})
    yield paths
    control.stop_agent(paths)
