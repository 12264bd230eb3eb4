"""The QEMU driver booting the real guest image (TCG here: nested KVM does not boot a guest).

Builds the image once (cached outside the repo, ~1-2 min, needs the Debian mirror); one machine
serves the module, and each test brings it to the state it needs itself (``running``, stopped,
the real engine deployed), so the tests hold in any order and one at a time. All traffic is to
127.0.0.1.
"""

import dataclasses
import os
import signal
import socket
import time

import paramiko
import pytest

from hostbridge.errors import VMError
from hostbridge.machines import clock, driver, image
from hostbridge.machines.qemu import QemuDriver

pytestmark = pytest.mark.vm
BOOT_TIMEOUT = 180


@pytest.fixture(scope="module")
def guest_image():
    # The user's cache, not a per-test HOSTBRIDGE_HOME: the image is built once (~1-2 min).
    import platformdirs

    cache = os.environ.get("HOSTBRIDGE_IMAGE_CACHE") or os.path.join(platformdirs.user_cache_dir("hostbridge"),
                                                                     "images")
    return image.build(cache_dir=cache)


@pytest.fixture(scope="module")
def machine(guest_image, tmp_path_factory):
    base = tmp_path_factory.mktemp("qemu")
    share = base / "share with space"
    share.mkdir()
    spec = driver.MachineSpec(name="vmtest", dir=str(base / "machine"), cpus=1, memory_mib=512, disk_gib=4,
                              shares=(str(share),), image_dir=guest_image.dir)
    d = QemuDriver(spec)
    d.share = share
    yield d
    d.destroy()


@pytest.fixture
def running(machine):
    """The module's machine created, running and answering SSH (a no-op when it already is)."""
    machine.create()
    machine.start()
    machine.wait_ssh(timeout=BOOT_TIMEOUT)
    return machine


ENGINE_PATH = "/usr/local/lib/hostbridge/engine.pyz"


def deploy_engine(client, tmp):
    """Put this checkout's real engine zipapp where the guest's init script runs it."""
    from hostbridge import deploy

    pyz = deploy.build_zipapp(str(tmp))
    assert run(client, "mkdir -p %s" % os.path.dirname(ENGINE_PATH))[0] == 0
    with client.open_sftp() as sftp:
        sftp.put(pyz, ENGINE_PATH)
    assert run(client, "sync")[0] == 0


def engine_answers(client, tries=100):
    """Poll (bounded, 0.2 s apart) until the engine answers /_ping on its socket in the guest."""
    probe = ("python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
             "s.connect('/run/hostbridge/docker.sock'); s.sendall(b'GET /_ping HTTP/1.0\\r\\n\\r\\n'); "
             "print(s.recv(4096).decode().splitlines()[0])\"")
    out = ""
    for _ in range(tries):
        status, out, _ = run(client, probe)
        if status == 0 and out.startswith("HTTP/1.") and " 200 " in out:
            return True
        time.sleep(0.2)
    raise AssertionError("the engine never answered /_ping in the guest: %r" % out)


def connect(info, host_key=None):
    """paramiko client that accepts only the pinned host key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    line = dataclasses.replace(info, host_key=host_key or info.host_key).known_hosts_line()
    entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
    client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
    client.connect(info.host, info.port, username=info.user, key_filename=info.key_path, look_for_keys=False,
                   allow_agent=False, timeout=20, banner_timeout=20, auth_timeout=20)
    return client


def run(client, cmd):
    _, out, err = client.exec_command(cmd, timeout=30)
    status = out.channel.recv_exit_status()
    return status, out.read().decode(), err.read().decode()


def test_accel_probe_is_quick_and_cached(guest_image, tmp_path):
    import platform
    import shutil

    from hostbridge.machines import qemu_cmd

    binary = shutil.which(qemu_cmd.qemu_binary())
    cache = str(tmp_path / "accel.json")
    t0 = time.monotonic()
    accel, notes = qemu_cmd.choose_accel(binary, platform.system(), qemu_cmd.qemu_arch(), guest_image.kernel, cache)
    # Here /dev/kvm exists but a nested guest never prints: the probe gives up on its own (a
    # hang-wide bound here; the probe's time is bench/vm_qemu_boot.py's figure)
    assert time.monotonic() - t0 < 120
    assert accel != "tcg" or notes

    def probe_again(*args):
        raise AssertionError("probed again: the cache was not used")

    # cached: the second choice runs no probe at all
    assert qemu_cmd.choose_accel(binary, platform.system(), qemu_cmd.qemu_arch(), guest_image.kernel,
                                 cache, probe=probe_again) == (accel, notes)


def test_probe_recognises_a_booting_kernel(guest_image):
    import shutil

    from hostbridge.machines import qemu_cmd

    # The probe's own boot, under TCG (which always works): the kernel's banner is seen.
    arch = qemu_cmd.qemu_arch()
    argv = qemu_cmd.probe_command(shutil.which(qemu_cmd.qemu_binary()), "Linux", arch, "tcg", guest_image.kernel)
    assert qemu_cmd.watch_console(argv, qemu_cmd.PROBE_MARK, timeout=30) == (True, "")


def test_create_is_idempotent_and_boot_reaches_sshd(machine):
    machine.destroy()  # from scratch, whatever ran before (destroy of nothing is not an error)
    assert machine.state() == driver.NOT_CREATED
    machine.create()
    machine.create()
    assert machine.state() == driver.STOPPED
    machine.start()
    machine.start()  # running: not an error
    assert machine.state() in (driver.RUNNING, driver.STARTING)
    with pytest.raises(VMError, match="no SSH after"):
        machine.wait_ssh(timeout=0.2)
    info = machine.wait_ssh(timeout=BOOT_TIMEOUT)
    # Woken by the guest's readiness port, not by polling (before it: what the init said of the
    # engine it starts beside sshd; this machine was offered none).
    assert machine.events[-1] == "ready init" and set(machine.events[:-1]) <= {"engine absent"}, machine.events
    assert info.host == "127.0.0.1" and info.user == "root"
    assert info.host_key.startswith("ssh-ed25519 ")
    assert machine.state() == driver.RUNNING


def test_ssh_with_the_injected_key_runs_python(running):
    machine = running
    with connect(machine.ssh_info()) as client:
        status, out, err = run(client, "python3 --version")
    assert status == 0 and (out + err).startswith("Python 3.")


def test_the_kernel_module_loader_is_there_after_boot(running):
    """The image leaves /sbin/modprobe to the initramfs' /init (assemble.LINKED_AT_BOOT): the
    init's modules loaded through it, and the kernel asks it."""
    with connect(running.ssh_info()) as client:
        assert run(client, "readlink /sbin/modprobe; cat /proc/sys/kernel/modprobe")[1] == \
            "../bin/busybox\n/sbin/modprobe\n"
        status, out, _ = run(client, "lsmod")
    assert status == 0 and {"ext4", "virtio_net", "overlay"} <= {line.split()[0] for line in out.splitlines()[1:]}


def test_an_unexpected_host_key_is_refused(running):
    machine = running
    other = paramiko.Ed25519Key.from_private_key_file(machine.files.ssh_key)  # any other ed25519 key
    with pytest.raises(paramiko.BadHostKeyException):
        connect(machine.ssh_info(), host_key="ssh-ed25519 " + other.get_base64())


def test_host_folder_is_mounted_at_the_same_path(running):
    machine = running
    (machine.share / "from-host").write_text("hello from the host\n")
    with connect(machine.ssh_info()) as client:
        status, out, _ = run(client, "cat '%s/from-host' && echo guest > '%s/from-guest' && "
                                     "grep -c ' 9p ' /proc/mounts" % (machine.share, machine.share))
    assert status == 0 and out.splitlines() == ["hello from the host", "1"]
    assert (machine.share / "from-guest").read_text() == "guest\n"


def test_a_clock_set_back_is_right_again_by_the_guest_or_the_host_never_both(running):
    # The guest init sets its clock back to the RTC's within a second (ClockWatch); the host's
    # resync, racing it, either corrects the 120 s it read or finds nothing to do — and a
    # correction read before the guest's own never lands on top of it (the clock would be 120 s ahead).
    machine = running
    with connect(machine.ssh_info()) as client:
        assert run(client, "date -u -s @%d >/dev/null" % (time.time() - 120))[0] == 0
        check = clock.resync(lambda cmd: run(client, cmd))
        assert check.drift < -100 if check.adjusted else abs(check.drift) <= clock.THRESHOLD
        time.sleep(1.5)  # the guest's watch looks every 0.5 s
        drift, rtt = clock.guest_drift(lambda cmd: run(client, cmd))
        # Each measurement is exact to half an SSH round trip (seconds under TCG on a busy host).
        assert abs(drift) < 1.0 + (check.round_trip + rtt) / 2


def test_init_reaps_orphans(running):
    machine = running
    with connect(machine.ssh_info()) as client:
        assert run(client, "for i in 1 2 3; do (sleep 0.2 &); done")[0] == 0
        time.sleep(2)
        status, out, _ = run(client, "ps -eo stat=,ppid= | awk '$1 ~ /^Z/ && $2 == 1' | wc -l")
    assert status == 0 and out.strip() == "0"


def test_engine_init_script_runs_the_real_engine(running, tmp_path):
    machine = running
    with connect(machine.ssh_info()) as client:
        deploy_engine(client, tmp_path)
        run(client, "/etc/init.d/hostbridge stop")  # a copy an earlier test started: restart on this one
        assert run(client, "/etc/init.d/hostbridge start")[0] == 0
        assert engine_answers(client)
        assert run(client, "/etc/init.d/hostbridge status")[1:] == ("running\n", "")
        cmdline = run(client, "tr '\\0' ' ' < /proc/$(cat /run/hostbridge/engine.pid)/cmdline")[1]
        assert ENGINE_PATH + " daemon --root /var/lib/hostbridge --socket /run/hostbridge/docker.sock " \
            "--group hostbridge --pidfile /run/hostbridge/engine.pid" in cmdline, cmdline
        assert run(client, "/etc/init.d/hostbridge stop")[0] == 0
        status, out, _ = run(client, "/etc/init.d/hostbridge status")
        assert (status, out.strip()) == (3, "stopped")


def test_bootstrap_is_idempotent_on_the_guest(running):
    machine = running
    from hostbridge.machines.image import PROVISION_DIR

    with connect(machine.ssh_info()) as client:
        assert run(client, "mkdir -p /tmp/provision")[0] == 0
        with client.open_sftp() as sftp:
            for name in ("bootstrap.sh", "hostbridge.service", "hostbridge.initd"):
                sftp.put(os.path.join(PROVISION_DIR, name), "/tmp/provision/" + name)
        for _ in range(2):
            status, out, err = run(client, "sh /tmp/provision/bootstrap.sh --files /tmp/provision")
            assert status == 0, out + err
        status, out, _ = run(client, "getent group hostbridge && cat /proc/sys/net/ipv4/ip_forward")
    assert status == 0 and out.splitlines()[-1] == "1"


def test_graceful_stop_powers_off_through_acpi(running):
    machine = running
    machine.stop(timeout=60)
    assert machine.state() == driver.STOPPED
    assert "power button pressed" in machine.serial_tail(40)
    machine.stop()  # stopped: not an error
    with pytest.raises(VMError, match="not running"):
        machine.ssh_info()


def test_warm_start_picks_another_port_when_taken(running):
    machine = running
    machine.stop(timeout=60)
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old port may be in TIME_WAIT
    taken.bind(("127.0.0.1", machine._record()["ssh_port"]))
    taken.listen(1)
    try:
        machine.start()
        info = machine.wait_ssh(timeout=BOOT_TIMEOUT)
        assert info.port != taken.getsockname()[1]
    finally:
        taken.close()
    with connect(info) as client:
        assert run(client, "true")[0] == 0


def test_sigkill_means_stopped_and_start_recovers(running, tmp_path):
    machine = running
    with connect(machine.ssh_info()) as client:
        deploy_engine(client, tmp_path)  # on the data disk: it must survive the kill
    pid = machine._pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while machine.state() != driver.STOPPED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert machine.state() == driver.STOPPED
    assert not os.path.exists(machine.files.pidfile)
    machine.start()
    with connect(machine.wait_ssh(timeout=BOOT_TIMEOUT)) as client:
        assert run(client, "test -d /root")[0] == 0
        # The deployed engine survived the kill and the init started it at boot.
        assert engine_answers(client)


def test_poweroff_inside_the_guest_stops_the_vm(running):
    machine = running
    with connect(machine.ssh_info()) as client:
        client.exec_command("poweroff")
    deadline = time.monotonic() + 60
    while machine.state() != driver.STOPPED and time.monotonic() < deadline:
        time.sleep(0.2)
    assert machine.state() == driver.STOPPED


def test_destroy_removes_every_file(machine):
    machine.create()
    machine.start()
    machine.destroy()
    assert machine.state() == driver.NOT_CREATED
    assert not os.path.exists(machine.spec.dir)
    machine.destroy()  # gone: not an error
