"""Resizing a real QEMU machine (`up --cpus/--memory/--disk` on a stopped VM, as `podman
machine set`): the qcow2 grows, the guest grows its ext4 at the next boot (df shows it), the
CPUs and memory are the guest's; a smaller disk and a change to a running machine are refused
with a one-line error and nothing touched. One machine for the module, destroyed after.
"""

import json
import os
import subprocess

import pytest

from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = pytest.mark.vm
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "rsz%d" % (os.getpid() % 10000)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmresize")), shared_image_cache())
    yield h
    if os.path.exists(os.path.join(h.machine_dir(NAME), "machine.json")):
        h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def _guest(host, script):
    return host.hb("ssh", "--machine", NAME, "--", script, check=True).stdout


def _data_disk_gib(host):
    """The size df gives the guest's data disk, in GiB."""
    kib = int(_guest(host, "df -P -k /var/lib/hostbridge | tail -n 1").split()[1])
    return kib / float(1 << 20)


def _virtual_size(host):
    disk = os.path.join(host.machine_dir(NAME), "disk.qcow2")
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", disk], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["virtual-size"]


def test_a_stopped_machine_grows_its_disk_and_takes_new_cpus_and_memory(host):
    r = host.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "768", "--disk", "3G",
                "--share", host.home, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert 2.5 < _data_disk_gib(host) <= 3.0
    assert _guest(host, "nproc").strip() == "1"

    r = host.hb("up", "--machine", NAME, "--cpus", "2")
    assert r.returncode == 1 and "is running: its CPUs change only while it is stopped" in r.stderr, r.stderr
    assert "hostbridge down --machine %s" % NAME in r.stderr

    host.hb("down", "--machine", NAME, check=True, timeout=180)
    r = host.hb("up", "--machine", NAME, "--disk", "2G")
    assert r.returncode == 1, r.stderr
    assert "the disk cannot shrink (3 GiB now, 2 GiB asked)" in r.stderr
    assert _virtual_size(host) == 3 << 30
    assert "stopped" in host.hb("status", "--machine", NAME).stdout  # the refusal booted nothing

    r = host.hb("up", "--machine", NAME, "--disk", "5G", "--cpus", "2", "--memory", "1024", timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert "resized: CPUs 1 → 2, memory (MiB) 768 → 1024, disk (GiB) 3 → 5" in r.stderr
    assert _virtual_size(host) == 5 << 30
    assert 4.5 < _data_disk_gib(host) <= 5.0  # grown online by the guest at boot: its data kept
    assert _guest(host, "nproc").strip() == "2"
    mem_kib = int(_guest(host, "awk '/MemTotal/ {print $2}' /proc/meminfo"))
    assert 850 << 10 < mem_kib <= 1024 << 10
    st = host.hb("status", "--machine", NAME, "--format", "{{.CPUs}} {{.MemoryMiB}} {{.DiskGiB}}", check=True)
    assert st.stdout.strip() == "2 1024 5"
