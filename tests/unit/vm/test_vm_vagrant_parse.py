"""Parsing vagrant's output. VirtualBox cannot run here, so the states of a created machine are
small hand-written samples in vagrant's machine-readable format (the same rows the real binary
prints for a not-created machine in tests/vm/test_vm_vagrant_cli.py); nothing here was recorded
from a live VirtualBox."""

import os

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import driver, vagrant

STATUS = """1700000000,default,metadata,provider,virtualbox
1700000000,default,provider-name,virtualbox
1700000000,default,state,{state}
1700000000,default,state-human-short,{state}
1700000000,,ui,info,Current machine states:\\n\\ndefault                   {state} (virtualbox)
"""

PROVIDER_NOT_USABLE = (
    "1700000000,,error-exit,Vagrant::Errors::ProviderNotUsable,The provider 'virtualbox' that was requested "
    "to back the machine\\n'default' is reporting that it isn't usable on this system. The\\nreason is shown "
    "below:\\n\\nVagrant could not detect VirtualBox! Make sure VirtualBox is properly installed.\\nVagrant uses "
    "the `VBoxManage` binary that ships with VirtualBox%!(VAGRANT_COMMA) and requires\\nthis to be available "
    "on the PATH.\n")


@pytest.mark.parametrize("word,state", [
    ("running", driver.RUNNING), ("poweroff", driver.STOPPED), ("aborted", driver.STOPPED),
    ("saved", driver.PAUSED), ("not_created", driver.NOT_CREATED), ("gurumeditation", driver.UNKNOWN),
])
def test_status_words_map_to_driver_states(word, state):
    assert vagrant.parse_status(STATUS.format(state=word)) == (state, word)


def test_machine_readable_unescapes_commas_and_newlines():
    rows = vagrant.parse_machine_readable(PROVIDER_NOT_USABLE)
    assert rows[0][1] == "error-exit"
    assert "VirtualBox, and requires\nthis" in rows[0][2]


def test_error_exit_becomes_one_line_with_what_to_install():
    with pytest.raises(VMError) as err:
        vagrant.parse_status(PROVIDER_NOT_USABLE)
    text = str(err.value)
    assert "\n" not in text and "Vagrant::Errors" not in text
    assert text.startswith("vagrant: The provider 'virtualbox'")
    assert "install VirtualBox" in err.value.hint


def test_status_without_a_state_is_an_error():
    with pytest.raises(VMError, match="no state"):
        vagrant.parse_status("1700000000,,ui,info,hello\n")


def test_ssh_config_with_a_key_path_holding_spaces():
    text = ("Host default\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking no\n  PasswordAuthentication no\n"
            '  IdentityFile "/Users/a b/.vagrant/machines/default/virtualbox/private_key"\n'
            "  IdentitiesOnly yes\n  LogLevel FATAL\n")
    info = vagrant.parse_ssh_config(text)
    assert (info.host, info.port, info.user) == ("127.0.0.1", 2222, "vagrant")
    assert info.key_path == "/Users/a b/.vagrant/machines/default/virtualbox/private_key"
    assert info.host_key is None


def test_ssh_config_without_port_is_an_error():
    with pytest.raises(VMError, match="no port"):
        vagrant.parse_ssh_config("Host default\n  HostName 127.0.0.1\n")


def test_create_writes_the_project_and_is_idempotent(tmp_path):
    spec = driver.MachineSpec(name="dev", dir=str(tmp_path / "dev"), cpus=3, memory_mib=3072, disk_gib=30,
                              shares=("/home/ana",))
    d = vagrant.VagrantDriver(spec)
    d.create()
    import json
    with open(d.files.vagrant_settings) as f:
        settings = json.load(f)
    assert settings["box"] == vagrant.DEFAULT_BOX == "debian/bookworm64"
    assert (settings["cpus"], settings["memory"], settings["disk_gb"], settings["shares"]) == \
        (3, 3072, 30, ["/home/ana"])
    assert (tmp_path / "dev" / "vagrant" / "Vagrantfile").read_text().startswith("# -*- mode: ruby -*-")
    d.create()  # exists: not an error
    assert d.state() == driver.NOT_CREATED  # no VM id yet: vagrant is not even run
    d.destroy()
    assert not (tmp_path / "dev").exists()


def test_the_provider_is_chosen_at_create_and_kept(tmp_path, monkeypatch):
    spec = driver.MachineSpec(name="dev", dir=str(tmp_path / "dev"), shares=("/home/ana",))
    monkeypatch.delenv(vagrant.PROVIDER_ENV, raising=False)
    assert vagrant.VagrantDriver(spec).provider == "virtualbox"
    monkeypatch.setenv(vagrant.PROVIDER_ENV, "libvirt")
    vagrant.VagrantDriver(spec).create()
    monkeypatch.setenv(vagrant.PROVIDER_ENV, "virtualbox")  # a later default does not move the machine
    assert vagrant.VagrantDriver(spec).provider == "libvirt"
    assert vagrant.VagrantDriver(spec, provider="virtualbox").provider == "virtualbox"


def test_host_key_from_what_the_guest_printed():
    out = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP2J root@bookworm\r\n"
    assert vagrant.parse_host_key(out) == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP2J"
    with pytest.raises(VMError, match="no ed25519 SSH host key"):
        vagrant.parse_host_key("cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file or directory\n")


def test_connect_refuses_a_guest_whose_host_key_is_unknown(tmp_path):
    from hostbridge.machines import steps

    class Record:
        class paths:
            known_hosts = str(tmp_path / "known_hosts")
        fields = {}

    info = driver.SSHInfo("192.168.121.5", 22, "vagrant", "/k")
    with pytest.raises(VMError, match="host key is not known"):
        steps.connect(Record, info)
    assert not (tmp_path / "known_hosts").exists()


def test_vagrant_notices_are_not_the_error():
    err = ("==> vagrant: You have requested to enabled the experimental flag with the following features:\n"
           "==> vagrant: \n==> vagrant: Features:  disks\n"
           "The provider 'virtualbox' that was requested to back the machine\n'default' is reporting that it "
           "isn't usable on this system.\n")
    text = str(vagrant.vagrant_error(vagrant.without_notices(err)))
    assert text == ("vagrant: The provider 'virtualbox' that was requested to back the machine 'default' is "
                    "reporting that it isn't usable on this system.")


def test_resize_rewrites_what_the_vagrantfile_reads_at_the_next_up(tmp_path):
    import json

    spec = driver.MachineSpec(name="dev", dir=str(tmp_path / "dev"), cpus=2, memory_mib=2048, disk_gib=20,
                              shares=("/home/ana",))
    d = vagrant.VagrantDriver(spec)
    d.create()
    d.resize(4, 4096, 40)
    with open(d.files.vagrant_settings) as f:
        settings = json.load(f)
    assert (settings["cpus"], settings["memory"], settings["disk_gb"], settings["shares"]) == (4, 4096, 40, ["/home/ana"])


FAKE_VAGRANT = """#!/bin/sh
# A stand-in for vagrant (VirtualBox cannot run here): logs its arguments and prints the status
# rows of the state held in $FAKE_STATE, which suspend and resume change as vagrant would.
echo "$*" >> "$FAKE_LOG"
case "$1" in
  status) sed "s/{state}/$(cat "$FAKE_STATE")/g" "$FAKE_STATUS" ;;
  suspend) echo saved > "$FAKE_STATE" ;;
  resume|up) echo running > "$FAKE_STATE" ;;
esac
"""


def test_suspend_and_resume_go_through_python_vagrant(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").write_text(FAKE_VAGRANT)
    (bin_dir / "vagrant").chmod(0o755)
    (tmp_path / "status").write_text(STATUS)
    (tmp_path / "state").write_text("running\n")
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    for name, value in (("FAKE_LOG", "log"), ("FAKE_STATE", "state"), ("FAKE_STATUS", "status")):
        monkeypatch.setenv(name, str(tmp_path / value))
    spec = driver.MachineSpec(name="m", dir=str(tmp_path / "m"), shares=(str(tmp_path),))
    d = vagrant.VagrantDriver(spec, provider="virtualbox")
    d.create()
    ident = tmp_path / "m" / "vagrant" / ".vagrant" / "machines" / "default" / "virtualbox"
    ident.mkdir(parents=True)
    (ident / "id").write_text("uuid")
    assert d.capabilities.suspend
    d.suspend()
    assert d.state() == driver.PAUSED
    d.start()
    assert d.resumed and d.state() == driver.RUNNING
    calls = [line.split()[0] for line in (tmp_path / "log").read_text().splitlines()]
    assert "suspend" in calls and "resume" in calls and "up" not in calls
