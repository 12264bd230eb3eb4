"""VM mode without a VM: sizes, shares, the ssh command line, the stage errors, the recorded
states, the CLI's choice between machine and container commands, and the deploy layout that
must agree with the guest image's init script."""

import os
import re
import subprocess
import sys

import pytest

from hostbridge import config, deploy
from hostbridge.cli.main import machine_form
from hostbridge.errors import MachineError, VMError
from hostbridge.machines import machine as machines
from hostbridge.machines import record
from hostbridge.machines import vmmode

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "hb"))
    for k in ("HOSTBRIDGE_MACHINE", "HOSTBRIDGE_HOST"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


@pytest.mark.parametrize("text,gib", [("20G", 20), ("20g", 20), ("20GiB", 20), ("4096M", 4), ("1T", 1024), (8, 8)])
def test_disk_sizes(text, gib):
    assert vmmode.parse_size_gib(text) == gib


@pytest.mark.parametrize("text", ["big", "20X", "512M", ""])
def test_bad_disk_sizes_say_what_to_write(text):
    with pytest.raises(MachineError, match="use"):
        vmmode.parse_size_gib(text)


def test_shares_setting_expands_home_and_drops_duplicates():
    assert vmmode.parse_shares("~%s/data%s~" % (os.pathsep, os.pathsep), home="/home/ana") == ("/home/ana", "/data")
    assert vmmode.parse_shares("") == ()


def test_shares_that_would_hide_guest_files_are_refused():
    kept, refused = vmmode.guest_shares(["/Users/ana", "/home/ana", "/root", "/", "/root/src", "/usr/local", "/run/x",
                                         "/tmp/a b"])
    assert kept == ("/Users/ana", "/home/ana", "/root/src", "/tmp/a b")
    assert refused == ("/root", "/", "/usr/local", "/run/x")


def _vm_record(name="dev", **fields):
    rec = record.Machine(name, "vm", "qemu", fields=dict({"cpus": 1, "memory_mib": 512, "disk_gib": 4}, **fields))
    rec.save()
    return rec


def test_ssh_argv_pins_the_key_and_uses_only_the_machine_key():
    rec = _vm_record(ssh={"hostname": "127.0.0.1", "port": 40022, "user": "root", "identity_files": ["/k/id"]})
    argv = vmmode.ssh_argv(rec, ["ls", "-l", "/"], ssh="/usr/bin/ssh")
    assert argv[:3] == ["/usr/bin/ssh", "-p", "40022"]
    assert "UserKnownHostsFile=" + rec.paths.known_hosts in argv and "StrictHostKeyChecking=yes" in argv
    assert "IdentitiesOnly=yes" in argv and argv[argv.index("-i") + 1] == "/k/id"
    assert argv[-5:] == ["root@127.0.0.1", "--", "ls", "-l", "/"]
    assert vmmode.ssh_argv(rec, tty=True)[-2:] == ["-t", "root@127.0.0.1"]


def test_ssh_argv_of_a_never_started_machine_says_to_start_it():
    with pytest.raises(MachineError, match="no SSH address yet.*hostbridge up"):
        vmmode.ssh_argv(_vm_record())


def test_stage_failures_name_the_stage_and_what_to_do():
    err = machines.StageFailed("dev", "ssh", VMError("machine dev: no SSH after 3 s: [ 1.0] Run /init",
                                                     hint="see the serial log: hostbridge logs --serial"))
    assert str(err) == ("machine dev: `up` failed at the ssh stage: no SSH after 3 s: [ 1.0] Run /init "
                        "(see `hostbridge logs --serial --machine dev`)")
    assert err.stage == "ssh" and err.machine == "dev"
    err = machines.StageFailed("dev", "deploy", OSError("Connection reset"))
    assert str(err).startswith("machine dev: `up` failed at the deploy stage: Connection reset (")
    assert set(machines.STAGES) == {"recover", "image", "create", "boot", "ssh", "resume", "deploy", "engine", "clock",
                                    "tunnel", "ping"}


def test_a_starting_state_whose_up_died_reads_half_started():
    rec = _vm_record(state="starting", up_pid=2 ** 22 + 7)  # above pid_max: never alive
    assert vmmode.describe_state(rec) == "half-started (an `up` was interrupted)"
    rec = _vm_record(state="starting", up_pid=os.getpid())
    assert vmmode.describe_state(rec) == "starting"


def test_the_endpoint_of_a_stopped_vm_says_how_to_start_it_without_paramiko():
    _vm_record(state="stopped")
    code = ("import sys\nfrom hostbridge.machines import vmmode\nfrom hostbridge.errors import MachineError\n"
            "try:\n    vmmode.endpoint_for('dev')\nexcept MachineError as e:\n    print(e)\n"
            "print('paramiko' in sys.modules, 'cryptography' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         cwd=REPO, check=True).stdout
    assert out == "machine dev is stopped (start it with `hostbridge up --machine dev`)\nFalse False\n"


def test_up_refuses_another_mode_and_another_driver():
    record.Machine("far", "remote", "").save()
    with pytest.raises(MachineError, match="far is a remote machine, not a VM"):
        machines.up_vm("far")
    _vm_record(state="stopped")
    with pytest.raises(MachineError, match="uses the qemu driver, not vagrant"):
        machines.up_vm("dev", driver="vagrant")


@pytest.mark.parametrize("name,args,machine", [
    ("restart", [], True), ("restart", ["--machine", "vm1"], True), ("restart", ["--machine=vm1"], True),
    ("restart", ["web"], False), ("restart", ["-t", "3", "web"], False),
    ("logs", ["--serial"], True), ("logs", ["--engine", "-n", "5"], True), ("logs", [], True),
    ("logs", ["web"], False), ("logs", ["-f", "web"], False), ("ps", [], False),
])
def test_machine_or_container_command(name, args, machine):
    assert machine_form(name, args) is machine


def test_vm_settings_have_types_and_precedence(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[vm]\ncpus = 4\nmemory = 4096\ndisk = \"40G\"\n")
    c = config.load({}, environ={"HOSTBRIDGE_VM_CPUS": "3"}, path=str(cfg))
    assert (c["vm.cpus"], c["vm.memory"], c["vm.disk"], c["vm.driver"]) == (3, 4096, "40G", "")
    with pytest.raises(Exception, match="vm.cpus .* must be a whole number"):
        config.load({}, environ={"HOSTBRIDGE_VM_CPUS": "two"}, path=str(cfg))


def _initd_value(name):
    with open(os.path.join(REPO, "provision", "hostbridge.initd")) as f:
        text = f.read()
    return re.search(r"^%s=(\S+)" % name, text, re.M).group(1)


def test_deploy_into_a_provisioned_guest_uses_its_init_script_and_paths():
    facts = deploy.RemoteFacts(uid=0, home="/root", python="3.11.2", provisioned=True)
    layout = deploy.plan_layout(facts, "vm")
    assert layout.start == "initd" and not layout.sudo
    assert deploy.ENGINE_LINK == _initd_value("ENGINE")  # the file the guest's init starts at boot
    assert os.path.dirname(deploy.ENGINE_LINK) == layout.dir
    assert layout.pidfile == _initd_value("PIDFILE") and layout.log == _initd_value("LOG")
    with open(os.path.join(REPO, "provision", "hostbridge.initd")) as f:
        script = f.read()
    assert "--socket %s" % layout.socket in script and "--root %s" % layout.root in script
    # A host provisioned by someone else without root: sudo, same service.
    assert deploy.plan_layout(deploy.RemoteFacts(uid=1000, home="/home/v", python="3.11.2", sudo=True,
                                                 provisioned=True), "vm").sudo
    # Not provisioned: the remote-mode layouts as before.
    assert deploy.plan_layout(deploy.RemoteFacts(uid=0, home="/root", python="3.11.2"), "h").start == "daemon"


def test_auto_shares_per_os():
    assert vmmode.parse_shares("auto", home="/Users/ana", system="Darwin") == ("/Users",)
    assert vmmode.parse_shares("auto", home="/home/ana", system="Linux") == ("/home/ana",)
    assert vmmode.parse_shares("auto", home="C:\\Users\\ana", system="Windows") == ("C:\\Users",)


def test_windows_shares_are_judged_where_they_land_in_the_guest():
    kept, refused = vmmode.guest_shares(["C:\\Users", "D:\\src"], system="Windows")
    assert (kept, refused) == (("C:\\Users", "D:\\src"), ())
    from hostbridge.machines.driver import check_shares

    check_shares(["C:\\Users\\ana"], system="Windows")  # lands at /c/Users/ana: fine
