"""Namespace joins that join: ``--pid/--ipc/--network container:X`` get X's namespaces, never the
host's; ``host`` modes get the host's; sysctls land in the namespace the container really has.
Each attempt runs against dockerd and our engine."""

import os
import uuid

import pytest


def _ns(kind):
    return os.readlink("/proc/self/ns/" + kind)


@pytest.fixture
def donor(backend):
    """A running container X (IPC shareable, so that both engines let others join it)."""
    name = "donor-%s-%s" % (backend.name, uuid.uuid4().hex[:6])
    r = backend.docker("run", "-d", "--name", name, "--network", "none", "--ipc", "shareable",
                       "busybox", "sleep", "120")
    assert r.returncode == 0, r.stderr
    yield name
    backend.docker("rm", "-f", name)


def _donor_ns(backend, donor, kind):
    r = backend.docker("exec", donor, "readlink", "/proc/self/ns/" + kind)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _run(backend, *args):
    return backend.docker("run", "--rm", *args)


@pytest.mark.parametrize("kind,flag", [("pid", "--pid"), ("net", "--network"), ("ipc", "--ipc")])
def test_join_container_namespace(backend, donor, kind, flag):
    want = _donor_ns(backend, donor, kind)
    extra = [] if kind == "net" else ["--network", "none"]
    r = _run(backend, flag, "container:" + donor, *extra, "busybox", "readlink", "/proc/self/ns/" + kind)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == want
    assert r.stdout.strip() != _ns(kind), "got the host's %s namespace" % kind


def test_pid_container_sees_only_the_donors_processes(backend, donor):
    r = _run(backend, "--pid", "container:" + donor, "--network", "none", "busybox", "ps", "-o", "comm")
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()[1:]
    assert "sleep" in names
    assert len(names) < 10, "sees the host's processes: %s" % names


def test_ipc_join_refused_when_donor_is_private(backend):
    name = "private-%s-%s" % (backend.name, uuid.uuid4().hex[:6])
    assert backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60").returncode == 0
    try:
        r = _run(backend, "--ipc", "container:" + name, "--network", "none", "busybox", "true")
        assert r.returncode != 0
        assert "non-shareable IPC" in r.stderr
    finally:
        backend.docker("rm", "-f", name)


def test_ipc_container_sysctl_stays_out_of_the_host(backend, donor):
    with open("/proc/sys/kernel/shmmax") as f:
        host_before = f.read()
    r = _run(backend, "--ipc", "container:" + donor, "--network", "none", "--sysctl", "kernel.shmmax=4096",
             "busybox", "cat", "/proc/sys/kernel/shmmax")
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_before, "changed the host's kernel.shmmax"
    if r.returncode == 0:  # dockerd writes it in the donor's namespace, which the container shares
        assert r.stdout.strip() == "4096"
        assert backend.docker("exec", donor, "cat", "/proc/sys/kernel/shmmax").stdout.strip() == "4096"


def test_ipc_host_sysctl_refused(backend):
    with open("/proc/sys/kernel/shmmax") as f:
        host_before = f.read()
    r = _run(backend, "--ipc", "host", "--network", "none", "--sysctl", "kernel.shmmax=4096", "busybox", "true")
    assert r.returncode != 0
    assert "kernel.shmmax" in r.stderr
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_before


def test_network_container_sysctl_stays_out_of_the_host(backend, donor):
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        host_before = f.read()
    _run(backend, "--network", "container:" + donor, "--sysctl", "net.ipv4.ping_group_range=0 0",
         "busybox", "true")
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        assert f.read() == host_before


@pytest.mark.parametrize("kind,flag", [("pid", "--pid"), ("ipc", "--ipc"), ("uts", "--uts"), ("net", "--network")])
def test_host_modes_join_the_host(backend, kind, flag):
    extra = [] if kind == "net" else ["--network", "none"]
    r = _run(backend, flag, "host", *extra, "busybox", "readlink", "/proc/self/ns/" + kind)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _ns(kind)


def test_uts_container_mode_refused_by_the_cli(backend, donor):
    r = _run(backend, "--uts", "container:" + donor, "--network", "none", "busybox", "true")
    assert r.returncode != 0


def test_network_host_gets_a_fresh_readonly_sysfs(backend):
    r = _run(backend, "--network", "host", "busybox", "cat", "/proc/self/mounts")
    assert r.returncode == 0, r.stderr
    mounts = [line.split() for line in r.stdout.splitlines()]
    sys_root = [m for m in mounts if m[1] == "/sys"]
    assert sys_root and sys_root[-1][2] == "sysfs" and "ro" in sys_root[-1][3].split(",")
    for src, target, fstype, opts, *_ in mounts:
        if target.startswith("/sys/") and fstype != "tmpfs":
            assert "ro" in opts.split(","), "%s (%s) is writable" % (target, fstype)
    w = _run(backend, "--network", "host", "busybox", "sh", "-c", "echo 1 > /sys/kernel/uevent_helper")
    assert w.returncode != 0
