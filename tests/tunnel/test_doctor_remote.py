"""`hostbridge doctor` for a remote machine: the tunnel's round trip and the host-key pin,
against the real sshd in a namespace; each broken on purpose (the pin removed, sshd stopped)."""

import json
import os

import pytest

pytestmark = pytest.mark.root


def _doctor(name):
    from click.testing import CliRunner

    from hostbridge.cli.app import App
    from hostbridge.cli.doctor import doctor

    res = CliRunner().invoke(doctor, ["--json", "--machine", name, "--dns-image", "hostbridge-doctor-absent:none"], obj=App())
    return res.exit_code, {c["check"]: c for c in json.loads(res.output)}


def test_tunnel_and_pin_then_each_broken(machine, sshd, monkeypatch):
    from hostbridge.deploy import engine_version
    from hostbridge.tunnel import control
    from hostbridge.machines import remote

    url = control.ensure_agent(machine)  # running already: no version check or upgrade
    remote.save_record(machine, {"name": "far", "mode": "remote", "driver": "", "endpoint_url": url,
                                 "ssh": control.read_json(machine.tunnel_json)["ssh"],
                                 "layout": {"version": engine_version()}})
    monkeypatch.setenv("DOCKER_HOST", url)
    code, checks = _doctor("far")
    assert checks["engine"]["ok"], checks["engine"]
    assert checks["tunnel"]["ok"] and "connected to root@%s:%d" % (sshd.host, sshd.port) in checks["tunnel"]["figure"]
    assert "round trip" in checks["tunnel"]["figure"] and "median of 5" in checks["tunnel"]["figure"]
    assert checks["host key"]["ok"] and sshd.host_fingerprint in checks["host key"]["figure"]
    assert checks["subnets"]["skipped"]

    os.rename(machine.known_hosts, machine.known_hosts + ".away")
    code, checks = _doctor("far")
    assert code == 1 and checks["host key"]["ok"] is False
    assert "no key pinned for [%s]:%d" % (sshd.host, sshd.port) in checks["host key"]["figure"]
    assert "--accept-host-key" in checks["host key"]["fix"]
    os.rename(machine.known_hosts + ".away", machine.known_hosts)

    sshd.stop()
    code, checks = _doctor("far")
    assert code == 1 and checks["tunnel"]["ok"] is False
    assert "hostbridge tunnel status far" in checks["tunnel"]["fix"]


def test_remote_ls_and_tunnel_status_formats(machine, sshd):
    from click.testing import CliRunner

    from hostbridge.cli.remote import remote_group, tunnel_group
    from hostbridge.deploy import engine_version
    from hostbridge.tunnel import control
    from hostbridge.machines import remote

    url = control.ensure_agent(machine)
    remote.save_record(machine, {"name": "far", "mode": "remote", "driver": "", "endpoint_url": url,
                                 "url": sshd.url(), "ssh": control.read_json(machine.tunnel_json)["ssh"],
                                 "layout": {"version": engine_version()}})
    r = CliRunner().invoke(remote_group, ["ls", "--format", "json"])
    row = json.loads(r.output)
    assert (row["Name"], row["Tunnel"], row["URL"], row["Endpoint"]) == ("far", "connected", sshd.url(), url)
    assert CliRunner().invoke(remote_group, ["ls", "-q"]).output == "far\n"
    assert CliRunner().invoke(tunnel_group, ["status", "far", "-q"]).output == "connected\n"
    out = CliRunner().invoke(tunnel_group, ["status", "far", "--format", "{{.State}} {{.Endpoint}} {{.Reconnects}}"])
    assert out.output == "connected %s 0\n" % url
    bad = CliRunner().invoke(tunnel_group, ["status", "far", "--format", "{{.Nope}}"])
    assert bad.exit_code == 1 and "can't evaluate field Nope" in bad.output
