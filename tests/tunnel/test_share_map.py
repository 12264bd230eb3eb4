"""`up` tells the engine where a Windows host's folders are mounted (machines/steps.share_map),
written over a real SSH connection to the namespace's sshd, and read back as the engine reads it."""

import pytest

from hostbridge import deploy
from hostbridge.guest.volumes.hostpaths import load_map, translate
from hostbridge.tunnel.known_hosts import KnownHosts
from hostbridge.tunnel.ssh import Connection, SSHTarget
from hostbridge.machines import steps
from hostbridge.machines.record import Machine

pytestmark = pytest.mark.root


def test_share_map_lands_in_the_engine_root(sshd, tmp_path, hb_home, monkeypatch):
    import hostbridge.hostos as hostos

    root = str(tmp_path / "guest-root")
    layout = deploy.Layout(dir=str(tmp_path / "lib"), root=root, socket=str(tmp_path / "d.sock"),
                           pidfile=str(tmp_path / "e.pid"), log=str(tmp_path / "e.log"), start="daemon",
                           sudo=False, version="x", python="python3")
    record = Machine("win", "vm", "qemu", fields={"shares": ["C:\\Users"]})
    target = SSHTarget(hostname=sshd.host, port=sshd.port, user="root", identity_files=[sshd.user_key])
    # This host is Linux; the map is what a Windows host computes (hostos.guest_path per OS).
    monkeypatch.setattr(hostos, "host_system", lambda platform=None: hostos.WINDOWS)
    with Connection(target, KnownHosts(str(tmp_path / "kh")), accept_host_keys=sshd.host_fingerprint,
                    look_for_keys=False, allow_agent=False) as conn:
        steps.share_map(conn, record, layout)
        assert load_map(root) == {"C:\\Users": "/c/Users"}
        assert translate("c:\\users\\ana\\p", load_map(root)) == "/c/Users/ana/p"
        assert record.fields["host_path_map"] == {"C:\\Users": "/c/Users"}
        monkeypatch.undo()
        record.fields["shares"] = ["/home/ana"]  # the shares changed: nothing to translate any more
        steps.share_map(conn, record, layout)
        assert load_map(root) == {}
    # A macOS/Linux machine never had a map: no SSH exec at all (conn is closed by now).
    fresh = Machine("mac", "vm", "qemu", fields={"shares": ["/Users"]})
    steps.share_map(conn, fresh, layout)
    assert "host_path_map" not in fresh.fields
