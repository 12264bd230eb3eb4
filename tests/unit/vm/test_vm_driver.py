"""Driver choice per OS, the instance file names, capabilities as data."""

import os

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import driver, drivers
from hostbridge.machines.qemu import QemuDriver
from hostbridge.machines.vagrant import VagrantDriver

ALL = {"vagrant": True, "virtualbox": True, "qemu": True}


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
@pytest.mark.parametrize("tools,expected", [
    (ALL, "vagrant"),
    ({"vagrant": True, "virtualbox": False, "qemu": True}, "qemu"),
    ({"vagrant": False, "virtualbox": True, "qemu": True}, "qemu"),
    ({"vagrant": True, "virtualbox": True, "qemu": False}, "vagrant"),
])
def test_default_driver_on_macos_and_windows(system, tools, expected):
    assert driver.default_driver(system, tools) == expected


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_no_vm_tool_says_what_to_install(system):
    with pytest.raises(VMError) as err:
        driver.default_driver(system, {"vagrant": True, "virtualbox": False, "qemu": False})
    assert "VirtualBox" in str(err.value) and "QEMU" in str(err.value)


def test_linux_is_native_unless_a_driver_is_requested():
    assert driver.default_driver("Linux", ALL) == "native"
    assert driver.default_driver("Linux", ALL, requested="qemu") == "qemu"
    assert driver.default_driver("Darwin", ALL, requested="qemu") == "qemu"


def test_bad_requests_are_refused():
    with pytest.raises(VMError, match="unknown driver"):
        driver.default_driver("Linux", ALL, requested="hyperv")
    with pytest.raises(VMError, match="only on Linux"):
        driver.default_driver("Darwin", ALL, requested="native")


def test_installed_tools_uses_the_lookup():
    found = {"vagrant", "qemu-system-aarch64"}
    tools = driver.installed_tools(which=lambda name: "/x/" + name if name in found else None, machine="arm64")
    assert tools == {"vagrant": True, "virtualbox": False, "qemu": True}


def test_instance_files_live_in_the_machine_dir_and_are_removed(tmp_path):
    files = driver.InstanceFiles(str(tmp_path / "m"))
    paths = files.all()
    assert len(set(paths)) == len(paths)
    assert all(os.path.dirname(p) == files.dir for p in paths)
    os.makedirs(files.vagrant_dir)
    for p in (files.disk, files.ssh_key, files.vagrant_settings):
        open(p, "w").close()
    files.remove_all()
    assert not os.path.exists(files.dir)


def test_remove_all_keeps_files_it_does_not_own(tmp_path):
    files = driver.InstanceFiles(str(tmp_path))
    open(files.disk, "w").close()
    open(tmp_path / "machine.json", "w").close()
    files.remove_all()
    assert os.listdir(tmp_path) == ["machine.json"]


def test_capabilities_are_data():
    assert QemuDriver.capabilities.host_share == "9p" and QemuDriver.capabilities.pinned_host_key
    assert VagrantDriver.capabilities.host_share == "vboxsf"
    assert VagrantDriver.capabilities.provisioned_by_driver and not QemuDriver.capabilities.provisioned_by_driver


def test_qemu_state_of_a_machine_never_created(tmp_path):
    d = QemuDriver(driver.MachineSpec(name="x", dir=str(tmp_path / "x")))
    assert d.state() == driver.NOT_CREATED
    d.stop()  # not an error
    d.destroy()  # not an error
    with pytest.raises(VMError, match="not running"):
        d.ssh_info()
    with pytest.raises(VMError, match="does not exist"):
        d.start()


def test_ssh_banner_needs_an_ssh_greeting():
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]

    def serve(greeting):
        conn, _ = srv.accept()
        conn.sendall(greeting)
        conn.close()

    try:
        for greeting, expected in ((b"SSH-2.0-OpenSSH_9.2\r\n", True), (b"", False)):
            t = threading.Thread(target=serve, args=(greeting,))
            t.start()
            assert driver.ssh_banner("127.0.0.1", port, timeout=2) is expected
            t.join(5)
    finally:
        srv.close()


def test_make_driver_by_name(tmp_path):
    spec = driver.MachineSpec(name="x", dir=str(tmp_path))
    assert isinstance(drivers.make_driver("qemu", spec), QemuDriver)
    assert isinstance(drivers.make_driver("vagrant", spec), VagrantDriver)
    with pytest.raises(VMError, match="not a VM driver"):
        drivers.make_driver("native", spec)


def test_qemu_create_over_a_corrupt_base_image_says_to_rebuild(tmp_path):
    img = tmp_path / "image"
    img.mkdir()
    for name in ("kernel", "initrd.img"):
        (img / name).write_bytes(b"garbage")
    (img / "manifest.json").write_text("{not json")
    d = QemuDriver(driver.MachineSpec(name="x", dir=str(tmp_path / "m"), image_dir=str(img)))
    with pytest.raises(VMError) as err:
        d.create()
    assert "corrupt" in str(err.value) and "rebuilt" in str(err.value)
    assert d.state() == driver.NOT_CREATED


@pytest.mark.parametrize("path,ok", [
    ("/home/ana", True), ("/Users/ana/site", True), ("/tmp/x", True), ("/srv/data", True),
    ("/var/folders/xy/T/site", True), ("/var", False), ("/var/lib/docker", False),
    ("/", False), ("/etc", False), ("/usr/local/src", False), ("/home/../etc", False), ("relative/dir", False),
    ("C:\\Users\\ana", False),
])
def test_share_paths_must_not_hide_guest_system_dirs(path, ok):
    if ok:
        driver.check_shares([path])
    else:
        with pytest.raises(VMError, match="cannot share"):
            driver.check_shares([path])


def test_known_hosts_line_pins_the_port():
    info = driver.SSHInfo("127.0.0.1", 40022, "root", "/k", host_key="ssh-ed25519 AAAAkey")
    assert info.known_hosts_line() == "[127.0.0.1]:40022 ssh-ed25519 AAAAkey"
    assert driver.SSHInfo("h", 22, "u", "/k", "ssh-ed25519 X").known_hosts_line() == "h ssh-ed25519 X"
    with pytest.raises(VMError, match="not known in advance"):
        driver.SSHInfo("127.0.0.1", 2222, "vagrant", "/k").known_hosts_line()


def test_the_readiness_channel_reads_the_guests_lines_as_they_come(tmp_path):
    import socket
    import threading

    from hostbridge.machines.qemu import ReadyChannel

    path = str(tmp_path / "ready.sock")
    with ReadyChannel(path) as ch:
        assert ch.next_event(0.05) == ""  # no QEMU yet: nothing, no error
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    sent = threading.Event()

    def guest():
        conn, _ = server.accept()
        conn.sendall(b"ready in")
        sent.wait(5)
        conn.sendall(b"it\nready engine\nerror HOSTBRIDGE-GUEST-ERROR: data disk: x\n")
        conn.close()

    t = threading.Thread(target=guest)
    t.start()
    try:
        with ReadyChannel(path) as ch:
            assert ch.next_event(0.2) == ""  # half a line is not an event
            sent.set()
            got = [ch.next_event(2) for _ in range(3)]
            assert got == ["ready init", "ready engine", "error HOSTBRIDGE-GUEST-ERROR: data disk: x"]
            assert ch.next_event(0.05) == ""  # closed: nothing more
    finally:
        t.join(5)
        server.close()


def _thp_enabled(status_text):
    return [line.split()[1] for line in status_text.splitlines() if line.startswith("THP_enabled:")]


@pytest.mark.skipif(not os.path.exists("/proc/self/status") or not _thp_enabled(open("/proc/self/status").read()),
                    reason="needs Linux's THP_enabled in /proc/PID/status")
@pytest.mark.parametrize("accel,expected", [("tcg", "0"), ("kvm", "1")])
def test_qemu_under_tcg_runs_without_transparent_huge_pages(tmp_path, accel, expected):
    """Under TCG, QEMU is started with huge pages off (qemu._small_pages): its faults of huge
    pages after the host idled cost seconds of a cold up on a host that is itself a VM. A KVM
    guest keeps them (its RAM is mapped by huge pages of the hardware's)."""
    d, cfg, _ = _stand_in_qemu(tmp_path, accel=accel)
    assert d._launch(cfg) == (True, "")
    assert _thp_enabled((tmp_path / "thp").read_text()) == [expected]
    assert _thp_enabled(open("/proc/self/status").read()) == ["1"]  # the caller's own is back


@pytest.mark.parametrize("stat,exiting", [
    ("4242 (qemu-system-x86) R 1 4241 4241 0 -1 4194624 0 0", True),  # killed, unmapping its RAM
    ("4242 (qemu-system-x86) D 1 4241 4241 0 -1 4194624 0 0", True),
    ("4242 (qemu-system-x86) Z 1 4241 4241 0 -1 4227404 0 0", False),  # a zombie: its threads are done
    ("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0", False),  # a kernel thread that took the pid
    ("4242 (a) b) R 1", False),  # not a stat line
    ("", False),
])
def test_a_process_without_a_command_line_is_alive_only_while_it_exits(stat, exiting):
    from hostbridge.machines.qemu import still_exiting

    assert still_exiting(stat) is exiting


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_zombie_qemu_is_not_alive_but_a_running_one_is(tmp_path):
    """Real processes: QEMU's pidfile is the marker (its command line names it)."""
    import subprocess
    import sys
    import time

    from hostbridge.machines.qemu import pid_alive

    marker = str(tmp_path / "qemu.pid")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        deadline = time.monotonic() + 10
        while marker.encode() not in open("/proc/%d/cmdline" % p.pid, "rb").read():  # forked, not yet exec'd
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pid_alive(p.pid, marker)
        assert not pid_alive(p.pid, str(tmp_path / "other.pid"))  # a pid reused by another process
        p.kill()
        while open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(p.pid, marker)  # not reaped yet: no command line, files closed
    finally:
        p.kill()
        p.wait()


def _stand_in_qemu(tmp_path, accel="tcg", locked_runs=0, message='Failed to get "write" lock'):
    """A stand-in qemu-system (the vm tier runs the real one) and a QemuDriver using it. Each run
    is counted (``runs``) and notes its process's THP_enabled (``thp``); the first ``locked_runs``
    runs fail with ``message``, the next starts as -daemonize does (writes the pidfile)."""
    from hostbridge.machines import qemu_cmd

    fake = tmp_path / "qemu-system-x86_64"
    runs = tmp_path / "runs"
    fake.write_text('#!/bin/sh\necho x >> "%s"\ngrep THP_enabled /proc/$$/status > "%s"\n'
                    'if [ "$(wc -l < "%s")" -le %d ]; then echo \'qemu-system-x86_64: -drive file=d: %s\' >&2; exit 1; fi\n'
                    'while [ "$1" != "-pidfile" ]; do shift; done\necho $$ > "$2"\n'
                    % (runs, tmp_path / "thp", runs, locked_runs, message))
    fake.chmod(0o755)
    d = QemuDriver(driver.MachineSpec(name="x", dir=str(tmp_path / "x")), system="Linux", arch="x86_64",
                   binary=str(fake))
    os.makedirs(d.spec.dir)
    cfg = qemu_cmd.QemuConfig(system="Linux", arch="x86_64", accel=accel, cpus=1, memory_mib=256,
                              disk="d.qcow2", kernel="k", initrd="i", ssh_port=2222, qmp="unix:q",
                              serial_log="s", pidfile=d.files.pidfile, name="x")
    return d, cfg, runs


def test_a_disk_still_locked_by_a_qemu_just_gone_is_waited_for(tmp_path):
    d, cfg, runs = _stand_in_qemu(tmp_path, locked_runs=2)
    assert d._launch(cfg) == (True, "")
    assert len(runs.read_text().split()) == 3


def test_a_disk_locked_for_good_fails_with_qemus_words(tmp_path, monkeypatch):
    from hostbridge.machines import qemu

    monkeypatch.setattr(qemu, "LOCK_RELEASE_WAIT", 0.3)
    d, cfg, runs = _stand_in_qemu(tmp_path, locked_runs=1000)
    ok, msg = d._launch(cfg)
    assert not ok and 'Failed to get "write" lock' in msg
    assert 2 <= len(runs.read_text().split()) <= 5


def test_other_qemu_failures_are_not_tried_again(tmp_path):
    d, cfg, runs = _stand_in_qemu(tmp_path, locked_runs=1, message="could not open disk image d.qcow2")
    ok, msg = d._launch(cfg)
    assert not ok and "could not open disk image" in msg
    assert len(runs.read_text().split()) == 1
