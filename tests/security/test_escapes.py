"""Escape attempts from runc/moby CVEs and docker's security docs, typed as a user would, each
asserting the safe outcome against dockerd and our engine."""

import os

import pytest


def _run(backend, *args, opts=()):
    return backend.docker("run", "--rm", "--network", "none", *opts, "busybox", *args)


def _sh(backend, script, opts=()):
    return _run(backend, "sh", "-c", script, opts=opts)


def test_sysrq_trigger_not_writable(backend):
    r = _sh(backend, "echo h > /proc/sysrq-trigger")
    assert r.returncode != 0


def test_kcore_masked(backend):
    r = _sh(backend, "wc -c < /proc/kcore")
    assert r.returncode != 0 or r.stdout.strip() == "0"


@pytest.mark.parametrize("path", ["/proc/keys", "/proc/timer_list", "/proc/sched_debug"])
def test_proc_info_masked(backend, path):
    if not os.path.exists(path):
        pytest.skip("host kernel: %s does not exist here" % path)
    r = _sh(backend, "cat %s | wc -c" % path)
    assert r.stdout.strip() == "0"


def test_core_pattern_not_writable(backend):
    with open("/proc/sys/kernel/core_pattern") as f:
        before = f.read()
    r = _sh(backend, "echo '|/tmp/x' > /proc/sys/kernel/core_pattern")
    assert r.returncode != 0
    with open("/proc/sys/kernel/core_pattern") as f:
        assert f.read() == before


@pytest.mark.parametrize("path", ["/sys/kernel/uevent_helper", "/sys/kernel/mm/ksm/run",
                                  "/sys/power/state"])
def test_sys_not_writable(backend, path):
    r = _sh(backend, "echo x > %s" % path)
    assert r.returncode != 0


def test_sys_fs_cgroup_read_only(backend):
    # /sys/fs/cgroup itself is a tmpfs (docker's too); the hierarchies on it are read-only
    r = _sh(backend, "for d in /sys/fs/cgroup/*/; do mkdir $d/escape && echo made $d; done; "
                     "mkdir /sys/fs/cgroup/unified/escape 2>/dev/null && echo made unified; true")
    assert "made" not in r.stdout


def test_release_agent_not_reachable(backend):
    # CVE-2022-0492: mount a cgroup v1 hierarchy and set release_agent
    r = _sh(backend, "mkdir -p /tmp/cg && mount -t cgroup -o rdma cgroup /tmp/cg")
    assert r.returncode != 0


def test_mknod_block_device_unusable(backend):
    # CAP_MKNOD is a default capability: the device cgroup must still refuse to open the node
    r = _sh(backend, "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk")
    assert r.returncode != 0


def test_mknod_mem_unusable(backend):
    r = _sh(backend, "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem")
    assert r.returncode != 0


def test_sys_admin_operations_refused(backend):
    for script in ("mount -t tmpfs none /mnt", "hostname escaped", "mount --bind /etc /mnt",
                   "umount /proc", "swapoff -a; swapon /dev/null"):
        r = _sh(backend, script)
        assert r.returncode != 0, script


def test_raw_socket_with_default_caps(backend):
    # NET_RAW is docker's default: a ping to the container's own loopback works...
    assert _run(backend, "ping", "-c", "1", "-W", "2", "127.0.0.1").returncode == 0
    # ...and goes with --cap-drop NET_RAW (and ALL)
    for drop in ("NET_RAW", "ALL"):
        r = _run(backend, "ping", "-c", "1", "-W", "2", "127.0.0.1", opts=("--cap-drop", drop))
        assert r.returncode != 0, drop


def test_cap_drop_all(backend):
    r = _sh(backend, "grep CapEff /proc/self/status; chown 1 /tmp", opts=("--cap-drop", "ALL"))
    assert "CapEff:\t0000000000000000" in r.stdout
    assert r.returncode != 0


def test_default_capabilities_are_dockers(backend):
    r = _sh(backend, "grep CapBnd /proc/self/status")
    assert r.stdout.split()[1] == "00000000a80425fb"


def test_no_new_privileges_with_setuid_binaries(backend):
    r = _sh(backend, "grep NoNewPrivs /proc/self/status", opts=("--security-opt", "no-new-privileges"))
    assert r.stdout.split()[1] == "1"


def test_proc_self_exe_not_writable_cve_2019_5736(backend):
    # overwriting the runtime through /proc/PID/exe: pid 1 (docker-init, tini) and ourselves
    r = _sh(backend, "echo x >> /proc/1/exe", opts=("--init",))
    assert r.returncode != 0
    r = _sh(backend, "echo x >> /proc/self/exe")
    assert r.returncode != 0


def test_host_pid_not_visible(backend):
    r = _run(backend, "ps", "-o", "pid")
    assert len(r.stdout.split()) < 6  # header, ps (and sh): the container's own


def test_dev_has_only_dockers_nodes(backend):
    r = _sh(backend, "ls /dev")
    names = set(r.stdout.split())
    assert not names & {"sda", "vda", "mem", "kmsg", "kvm", "nvme0n1", "port"}, names


def test_kmsg_not_readable(backend):
    r = _sh(backend, "head -c 1 /dev/kmsg")
    assert r.returncode != 0


def test_keyctl_proc_keys_empty_for_container(backend):
    r = _sh(backend, "cat /proc/keys 2>/dev/null | wc -l")
    assert r.stdout.strip() == "0"
