"""Suspend's parts: what a saved state must fit (pure), the guest commands run by a real shell,
and the save itself against a real QEMU (a paused q35 machine with no guest: it migrates like
any other) — saved, loaded back with -incoming, and a save onto a full file system (tmpfs)."""

import os
import shutil
import subprocess
import time

import pytest

from hostbridge.machines import qemu_cmd, suspend
from hostbridge.machines.qmp import QMP

QEMU = shutil.which("qemu-system-x86_64")


def _cfg(**kw):
    base = dict(system="Linux", arch="x86_64", accel="tcg", cpus=1, memory_mib=1024, disk="/m/disk.qcow2",
                kernel="/img/kernel", initrd="/img/initrd.img", ssh_port=2222, qmp="unix:/m/qmp.sock",
                serial_log="/m/serial.log", pidfile="/m/qemu.pid")
    base.update(kw)
    return qemu_cmd.build_command(qemu_cmd.QemuConfig(**base), "/usr/bin/qemu-system-x86_64")


def test_fingerprint_ignores_the_ssh_port_but_not_the_machine():
    fp = suspend.fingerprint(_cfg(), "/nonexistent/qemu")
    assert fp == suspend.fingerprint(_cfg(ssh_port=40000), "/nonexistent/qemu")
    assert fp == suspend.fingerprint(_cfg(daemonize=False), "/nonexistent/qemu")
    assert fp != suspend.fingerprint(_cfg(memory_mib=2048), "/nonexistent/qemu")
    assert fp != suspend.fingerprint(_cfg(kernel="/img2/kernel"), "/nonexistent/qemu")
    assert fp != suspend.fingerprint(_cfg(), "/other/qemu")


@pytest.fixture
def saved(tmp_path):
    state, meta, disk = (str(tmp_path / n) for n in ("saved-state", "saved-state.json", "disk.qcow2"))
    for path, data in ((state, b"x" * 1000), (disk, b"d")):
        with open(path, "wb") as f:
            f.write(data)
    suspend.write_meta(meta, "fp", state, disk)
    return state, meta, disk


def test_check_accepts_a_state_that_fits(saved):
    state, meta, disk = saved
    assert suspend.check(meta, state, "fp", disk) == (True, "")


def test_check_without_a_saved_state_says_nothing(tmp_path):
    assert suspend.check(str(tmp_path / "m"), str(tmp_path / "s"), "fp", str(tmp_path / "d")) == (False, "")


@pytest.mark.parametrize("change,words", [
    ("truncate", "truncated"), ("disk", "data disk was changed"), ("fingerprint", "QEMU changed"),
    ("no-meta", "did not finish"), ("no-state", "missing"), ("corrupt-meta", "unreadable"),
])
def test_check_refuses_a_state_that_does_not_fit(saved, change, words):
    state, meta, disk = saved
    fp = "fp"
    if change == "truncate":
        os.truncate(state, 500)
    elif change == "disk":
        time.sleep(0.01)
        with open(disk, "ab") as f:
            f.write(b"more")
    elif change == "fingerprint":
        fp = "another"
    elif change == "no-meta":
        os.remove(meta)
    elif change == "no-state":
        os.remove(state)
    else:
        with open(meta, "w") as f:
            f.write("{not json")
    ok, why = suspend.check(meta, state, fp, disk)
    assert not ok and words in why


def _sh(cmd, mounts):
    """Run a guest command with /proc/mounts replaced by ``mounts`` (text) and mount/umount logged."""
    return subprocess.run(["sh", "-c", cmd.replace("/proc/mounts", mounts)], capture_output=True, text=True)


def test_share_test_reads_proc_mounts_escapes(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("share0 /Users/a\\040b 9p rw,trans=virtio 0 0\n/dev/vda /var/lib/hostbridge ext4 rw 0 0\n")
    assert _sh(suspend._is_share("/Users/a b"), str(mounts)).returncode == 0
    assert _sh(suspend._is_share("/Users/a"), str(mounts)).returncode != 0
    assert _sh(suspend._is_share("/var/lib/hostbridge"), str(mounts)).returncode != 0  # not 9p


def test_guest_commands_name_each_share():
    shares = [{"tag": "share0", "path": "/Users"}, {"tag": "share1", "path": "/Volumes/x y"}]
    prep = suspend.prepare_command(shares)
    assert prep.startswith("sync; fstrim /var/lib/hostbridge")
    assert "umount /Users" in prep and "umount '/Volumes/x y'" in prep and "exit 3" in prep
    again = suspend.resume_command(shares)
    assert "share1 '/Volumes/x y'" in again and "mount -t 9p -o " + suspend.MOUNT_OPTS in again
    assert suspend.prepare_command([]).endswith("drop_caches") and suspend.resume_command([]) == "true"


class FakeConn:
    """An SSH connection's stand-in answering with a given exit status: what is under test is how
    prepare_guest reads it (the commands themselves run in a real guest in tests/vm)."""

    def __init__(self, rc):
        self.rc, self.ran = rc, []

    def run(self, cmd, timeout=None):
        self.ran.append(cmd)
        return self.rc, b"", b"umount: /Users: target is busy"


def test_a_busy_share_is_reported_as_such():
    with pytest.raises(suspend.SharesBusy):
        suspend.prepare_guest(FakeConn(3), [{"tag": "share0", "path": "/Users"}])
    with pytest.raises(suspend.VMError, match="target is busy"):
        suspend.prepare_guest(FakeConn(1), [])


# -- against a real QEMU ------------------------------------------------------------------------

def _qemu(tmp_path, *extra, state=None):
    """A daemonized QEMU; ``state``: a saved-state file it loads (-incoming fd:, as the driver does)."""
    sock, pid = str(tmp_path / "q.sock"), str(tmp_path / "q.pid")
    fd = os.open(str(state), os.O_RDONLY) if state else None
    try:
        subprocess.run([QEMU, "-M", "q35", "-m", "64", "-nodefaults", "-display", "none", "-accel", "tcg",
                        "-qmp", "unix:%s,server=on,wait=off" % sock, "-pidfile", pid, "-daemonize"] + list(extra)
                       + (suspend.incoming_args(fd) if state else []), check=True, timeout=60,
                       pass_fds=(fd,) if state else ())
    finally:
        if fd is not None:
            os.close(fd)
    try:
        with open(pid) as f:
            return "unix:" + sock, int(f.read())
    except FileNotFoundError:  # QEMU exited already (and removed its pidfile): a state it refused
        return "unix:" + sock, None


def _quit(address, pid):
    try:
        with QMP(address) as q:
            q.execute("quit")
    except OSError:
        pass
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)


def _alive(pid):
    if pid is None:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.skipif(not QEMU, reason="needs QEMU (scripts/install-deps.sh installs it)")
def test_save_then_load_with_incoming(tmp_path):
    address, pid = _qemu(tmp_path)
    state = str(tmp_path / "saved-state")
    try:
        info = suspend.save(address, state)
        assert info["status"] == "completed" and os.path.getsize(state) > 0
        assert not os.path.exists(state + ".tmp")
    finally:
        _quit(address, pid)
    (tmp_path / "in").mkdir()
    address, pid = _qemu(tmp_path / "in", state=state)
    try:
        assert suspend.wait_incoming(address, lambda: _alive(pid), 30) == (True, "")
        with QMP(address) as q:
            assert q.execute("query-status")["status"] == "running"
    finally:
        _quit(address, pid)


@pytest.mark.skipif(not QEMU, reason="needs QEMU (scripts/install-deps.sh installs it)")
def test_a_corrupt_state_is_refused_without_hanging(tmp_path):
    state = tmp_path / "saved-state"
    state.write_bytes(b"QEVM\0\0\0\3" + os.urandom(4096))
    address, pid = _qemu(tmp_path, state=state)
    try:
        t0 = time.monotonic()
        ok, why = suspend.wait_incoming(address, lambda: _alive(pid), 30)
        assert not ok and "could not load" in why and time.monotonic() - t0 < 30
    finally:
        if _alive(pid):
            _quit(address, pid)


@pytest.mark.root
@pytest.mark.skipif(not QEMU, reason="needs QEMU (scripts/install-deps.sh installs it)")
def test_a_full_disk_leaves_the_vm_running_with_a_clear_error(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    address, pid = _qemu(tmp_path)
    try:
        with QMP(address) as q:
            q.execute("cont")
        with pytest.raises(suspend.SaveError, match="is full.*keeps running"):
            suspend.save(address, str(full / "saved-state"))
        with QMP(address) as q:
            assert q.execute("query-status")["status"] == "running"
        assert os.listdir(str(full)) == []
    finally:
        _quit(address, pid)
        subprocess.run(["umount", str(full)], check=False)
