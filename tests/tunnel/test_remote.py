"""Remote mode end to end: `remote add` against the namespace's sshd, ls, upgrade, rm."""

import os

import pytest
from click.testing import CliRunner

from hostbridge import deploy
from hostbridge.cli.remote import remote_group, tunnel_group
from hostbridge.errors import MachineError
from hostbridge.tunnel import localhttp
from hostbridge.tunnel.errors import HostKeyError
from hostbridge.paths import MachinePaths
from hostbridge.machines import remote

pytestmark = pytest.mark.root



def _add(sshd, tmp_path, **kw):
    kw.setdefault("accept_host_key", sshd.host_fingerprint)
    return remote.add_remote("build1", sshd.url(), identity=sshd.user_key, remote_dir=str(tmp_path / "remote"),
                             start="daemon", shim="never", **kw)


def test_unknown_host_key_is_refused_and_nothing_is_left(hb_home, sshd, tmp_path):
    with pytest.raises(HostKeyError) as ei:
        _add(sshd, tmp_path, accept_host_key=None)
    assert ei.value.got == sshd.host_fingerprint
    assert not os.path.exists(MachinePaths.for_name("build1").dir)
    assert not os.path.exists(str(tmp_path / "remote"))


def test_cli_add_without_confirmation_prints_the_fingerprint(hb_home, sshd):
    res = CliRunner().invoke(remote_group, ["add", "build1", sshd.url(), "-i", sshd.user_key, "--yes"])
    assert res.exit_code == 1
    assert "--accept-host-key %s" % sshd.host_fingerprint in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_add_fails_at_the_start_stage_and_cleans_up(hb_home, sshd, tmp_path, monkeypatch):
    # the far side's python3 passes the checks, but the engine it starts dies at once
    broken = tmp_path / "python3-broken"
    broken.write_text('#!/bin/sh\nif [ "$3" != daemon ]; then exec python3 "$@"; fi\n'
                      'echo "engine: cannot start" >&2\nexit 1\n')
    broken.chmod(0o755)
    real = remote.deploy.deploy
    monkeypatch.setattr(remote.deploy, "deploy", lambda *a, **kw: real(*a, **dict(kw, python=str(broken))))
    with pytest.raises(Exception) as ei:
        _add(sshd, tmp_path)
    assert "did not start" in str(ei.value) and "\n" not in str(ei.value)
    assert not os.path.exists(MachinePaths.for_name("build1").dir)
    assert remote.list_remotes() == []


def test_add_ls_status_upgrade_rm(hb_home, sshd, tmp_path):
    rec = _add(sshd, tmp_path)
    paths = MachinePaths.for_name("build1")
    try:
        assert localhttp.ping(rec["endpoint_url"])
        assert localhttp.get_json(rec["endpoint_url"], "/version")["Version"] == deploy.engine_version()
        assert [r["name"] for r in remote.list_remotes()] == ["build1"]
        out = CliRunner().invoke(tunnel_group, ["status", "build1"]).output
        assert "state:       connected" in out and rec["endpoint_url"] in out
        with pytest.raises(MachineError, match="exists already"):
            _add(sshd, tmp_path)
        res = remote.upgrade_remote("build1")
        assert res["to"] == deploy.engine_version()
        assert localhttp.ping(remote.endpoint_for("build1"))
    finally:
        remote.remove_remote("build1", stop_engine=True)
    assert not os.path.exists(paths.dir)
    assert not os.path.exists(str(tmp_path / "remote" / "run" / "docker.sock"))


def test_cli_add_asks_about_an_unknown_key_and_a_no_refuses(hb_home, sshd, monkeypatch):
    import hostbridge.cli.remote as cli_remote

    monkeypatch.setattr(cli_remote, "_interactive", lambda: True)
    res = CliRunner().invoke(remote_group, ["add", "build1", sshd.url(), "-i", sshd.user_key], input="n\n")
    assert res.exit_code == 1
    assert "The host key of %s has the fingerprint %s." % (sshd.host, sshd.host_fingerprint) in res.output
    assert "Trust it and continue?" in res.output
    assert not os.path.exists(MachinePaths.for_name("build1").dir)
