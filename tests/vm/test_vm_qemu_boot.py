"""The QEMU driver booting the real guest image (TCG here: nested KVM does not boot a guest).

Builds the image once (cached outside the repo, ~1-2 min, needs the Debian mirror), then one
machine goes through: boot → SSH with the pinned host key → share → clock → graceful stop →
warm start on a taken port → SIGKILL → destroy. All traffic is to 127.0.0.1.
"""

import base64
import os
import signal
import socket
import time

import paramiko
import pytest

from hostbridge.errors import VMError
from hostbridge.vm import clock, driver, image
from hostbridge.vm.qemu import QemuDriver

pytestmark = pytest.mark.vm
BOOT_TIMEOUT = 180


@pytest.fixture(scope="module")
def guest_image():
    return image.build()


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


def connect(info, host_key=None):
    """paramiko client that accepts only the pinned host key."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = (host_key or info.host_key).split()[:2]
    client.get_host_keys().add("[%s]:%d" % (info.host, info.port), kind, paramiko.Ed25519Key(data=base64.b64decode(blob)))
    client.connect(info.host, info.port, username=info.user, key_filename=info.key_path, look_for_keys=False,
                   allow_agent=False, timeout=20, banner_timeout=20, auth_timeout=20)
    return client


def run(client, cmd):
    _, out, err = client.exec_command(cmd, timeout=30)
    status = out.channel.recv_exit_status()
    return status, out.read().decode(), err.read().decode()


def test_create_is_idempotent_and_boot_reaches_sshd(machine):
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
    assert info.host == "127.0.0.1" and info.user == "root"
    assert info.host_key.startswith("ssh-ed25519 ")
    assert machine.state() == driver.RUNNING


def test_ssh_with_the_injected_key_runs_python(machine):
    with connect(machine.ssh_info()) as client:
        status, out, err = run(client, "python3 --version")
    assert status == 0 and (out + err).startswith("Python 3.")


def test_an_unexpected_host_key_is_refused(machine):
    other = paramiko.Ed25519Key.from_private_key_file(machine.files.ssh_key)  # any other ed25519 key
    with pytest.raises(paramiko.BadHostKeyException):
        connect(machine.ssh_info(), host_key="ssh-ed25519 " + other.get_base64())


def test_host_folder_is_mounted_at_the_same_path(machine):
    (machine.share / "from-host").write_text("hello from the host\n")
    with connect(machine.ssh_info()) as client:
        status, out, _ = run(client, "cat '%s/from-host' && echo guest > '%s/from-guest' && "
                                     "grep -c ' 9p ' /proc/mounts" % (machine.share, machine.share))
    assert status == 0 and out.splitlines() == ["hello from the host", "1"]
    assert (machine.share / "from-guest").read_text() == "guest\n"


def test_clock_resync_on_the_real_guest(machine):
    with connect(machine.ssh_info()) as client:
        assert run(client, "date -u -s @%d >/dev/null" % (time.time() - 120))[0] == 0
        check = clock.resync(lambda cmd: run(client, cmd))
        assert check.adjusted and check.drift < -100
        assert abs(clock.guest_drift(lambda cmd: run(client, cmd))[0]) < 1.0


def test_graceful_stop_powers_off_through_acpi(machine):
    machine.stop(timeout=60)
    assert machine.state() == driver.STOPPED
    assert "power button pressed" in machine.serial_tail(40)
    machine.stop()  # stopped: not an error
    with pytest.raises(VMError, match="not running"):
        machine.ssh_info()


def test_warm_start_picks_another_port_when_taken(machine):
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


def test_sigkill_means_stopped_and_start_recovers(machine):
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


def test_destroy_removes_every_file(machine):
    machine.destroy()
    assert machine.state() == driver.NOT_CREATED
    assert not os.path.exists(machine.spec.dir)
    machine.destroy()  # gone: not an error
