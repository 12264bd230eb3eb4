"""Resizing a stopped VM without booting it: the plan, a real qcow2 grown by the real qemu-img,
a smaller disk and a running machine refused with nothing touched, the guest's ext4 size read
from a real mke2fs superblock. The vm tier (tests/vm/test_vm_resize.py) boots the grown disk."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from test_vm_guest_init import load_init  # a sibling module (pytest puts this folder on sys.path)

from hostbridge.errors import MachineError
from hostbridge.machines import record, resize


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "hb"))
    monkeypatch.delenv("HOSTBRIDGE_MACHINE", raising=False)
    return tmp_path


def test_plan_lists_only_what_changes_and_refuses_a_smaller_disk():
    now = {"cpus": 2, "memory_mib": 2048, "disk_gib": 20}
    assert resize.plan(now, cpus=2, memory_mib=None, disk_gib=20) == {}
    assert resize.plan(now, cpus=4, disk_gib=30) == {"cpus": (2, 4), "disk_gib": (20, 30)}
    assert resize.describe({"cpus": (2, 4)}) == "CPUs 2 → 4"
    with pytest.raises(MachineError) as e:
        resize.plan(now, disk_gib=10, name="dev")
    assert "cannot shrink (20 GiB now, 10 GiB asked)" in str(e.value) and "20G" in e.value.hint


def _virtual_size(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True, check=True, text=True)
    return json.loads(out.stdout)["virtual-size"]


@pytest.fixture
def stopped_qemu_machine():
    """A qemu machine's files as `create` leaves them (a real qcow2), never booted."""
    if not shutil.which("qemu-img"):
        pytest.fail("qemu-img is missing: scripts/install-deps.sh installs it")
    rec = record.Machine("dev", "vm", "qemu", fields={"cpus": 1, "memory_mib": 512, "disk_gib": 2})
    rec.save()
    os.makedirs(rec.paths.dir, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", rec.paths.disk, "2G"], check=True)
    with open(rec.paths.driver_json, "w") as f:
        json.dump({"image_dir": "/nonexistent", "cpus": 1, "memory_mib": 512, "disk_gib": 2, "shares": [],
                   "ssh_port": 0}, f)
    return rec


def test_a_stopped_machine_grows_its_disk_and_takes_its_new_size_at_next_start(stopped_qemu_machine):
    rec = stopped_qemu_machine
    changes = resize.resize_vm(rec, cpus=2, memory_mib=1024, disk_gib=3)
    assert changes == {"cpus": (1, 2), "memory_mib": (512, 1024), "disk_gib": (2, 3)}
    assert _virtual_size(rec.paths.disk) == 3 << 30
    with open(rec.paths.driver_json) as f:
        drv = json.load(f)
    assert (drv["cpus"], drv["memory_mib"], drv["disk_gib"]) == (2, 1024, 3)
    assert {k: record.load("dev").fields[k] for k in resize.FIELDS} == {"cpus": 2, "memory_mib": 1024, "disk_gib": 3}
    assert resize.resize_vm(record.load("dev"), cpus=2, disk_gib=3) == {}  # the same size: nothing to do


def test_a_smaller_disk_is_refused_and_nothing_is_touched(stopped_qemu_machine):
    rec = stopped_qemu_machine
    before = open(rec.paths.driver_json).read()
    with pytest.raises(MachineError, match="cannot shrink"):
        resize.resize_vm(rec, cpus=4, disk_gib=1)
    assert _virtual_size(rec.paths.disk) == 2 << 30
    assert open(rec.paths.driver_json).read() == before
    assert record.load("dev").fields["cpus"] == 1


def test_a_running_machine_is_refused(stopped_qemu_machine):
    rec = stopped_qemu_machine
    # A process whose command line names the pidfile is what the driver takes for its QEMU.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", rec.paths.pidfile])
    try:
        deadline = time.monotonic() + 10
        while b"sleep" not in open("/proc/%d/cmdline" % proc.pid, "rb").read() and time.monotonic() < deadline:
            time.sleep(0.02)  # Popen may return while the kernel is still setting the new command line up
        with open(rec.paths.pidfile, "w") as f:
            f.write(str(proc.pid))
        with pytest.raises(MachineError) as e:
            resize.resize_vm(rec, cpus=4)
        assert "only while it is stopped" in str(e.value) and "hostbridge down --machine dev" in e.value.hint
        assert record.load("dev").fields["cpus"] == 1
    finally:
        proc.kill()
        proc.wait()


def test_the_guest_reads_its_ext4_size_from_the_superblock(tmp_path):
    init = load_init()
    disk = str(tmp_path / "disk.img")
    with open(disk, "wb") as f:
        f.truncate(96 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", disk], check=True, capture_output=True)
    with open(disk, "rb") as f:
        head = f.read(1 << 20)
    assert init.ext4_bytes(head) == 96 << 20


def _hb(*args):
    r = subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, HOSTBRIDGE_MACHINE="dev"))
    return r


def test_config_set_resizes_the_selected_stopped_vm_and_a_refusal_writes_nothing(stopped_qemu_machine):
    rec = stopped_qemu_machine
    r = _hb("config", "set", "vm.disk", "1G")
    assert r.returncode == 1 and "the disk cannot shrink (2 GiB now, 1 GiB asked)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the error and its hint
    assert _hb("config", "get", "vm.disk").stdout.strip() == "20G"  # not written
    r = _hb("config", "set", "vm.disk", "3G")
    assert r.returncode == 0, r.stderr
    assert "Machine dev resized (disk (GiB) 2 → 3)" in r.stderr
    assert _virtual_size(rec.paths.disk) == 3 << 30
    assert _hb("config", "get", "vm.disk").stdout.strip() == "3G"
    r = _hb("config", "set", "vm.cpus", "3")
    assert r.returncode == 0 and record.load("dev").fields["cpus"] == 3, r.stderr
