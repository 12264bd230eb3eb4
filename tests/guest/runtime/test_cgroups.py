"""Cgroup hierarchies: placement, and the v2 code path on this host's cgroup2 mount."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from hostbridge.guest.runtime import cgroupfs, cgroups

pytestmark = pytest.mark.root


def test_layout_finds_every_controller_once():
    lay = cgroups.layout()
    assert {"memory", "cpu", "pids"} <= set(lay)
    for ver, mnt in lay.values():
        assert ver in ("v1", "v2") and os.path.isdir(mnt)


def _v1_mounts_and_own_paths():
    """From /proc directly (not the code under test): {controller: v1 mount point} and
    {controller: this process's cgroup path}."""
    mounts, own = {}, {}
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fstype, opts = line.split()[:4]
            if fstype == "cgroup":
                for opt in opts.split(","):
                    mounts.setdefault(opt, mnt)
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                own[c] = path
    return mounts, own


def test_v1_paths_nest_under_our_own_cgroup():
    cg = cgroups.Cgroup("placement-probe")
    mounts, own = _v1_mounts_and_own_paths()
    assert {"memory", "cpu", "pids"} <= set(mounts)  # this host's v1 hierarchy (the premise)
    assert {"memory", "cpu", "pids"} <= set(cg.paths)
    for c in ("memory", "cpu", "pids"):
        assert cg.paths[c] == os.path.normpath("%s/%s/hostbridge/placement-probe" % (mounts[c], own[c])), c


def _v2_mount():
    """The host's cgroup2 mount; the premise read from /proc/mounts, and the code under test
    must find the same (a broken probe fails, it does not skip)."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    if not mounts:
        pytest.skip("host kernel: no cgroup2 mount on this host")
    _, v2 = cgroupfs._mounts()
    assert v2 in mounts, (v2, mounts)
    return v2


def test_v2_freeze_cpu_accounting_and_destroy():
    # this host's cgroup2 mount lends no memory/cpu/pids controller, but its core files
    # (cgroup.procs, cgroup.freeze, cpu.stat) are the v2 code path all the same
    v2 = _v2_mount()
    where = {"freezer": ("v2", v2), "cpuacct": ("v2", v2)}
    cg = cgroups.Cgroup("v2-probe-%d" % os.getpid(), where=where)
    cg.create({})
    p = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        cg.add(p.pid)
        assert cg.pids() == [p.pid]
        time.sleep(0.3)
        used = cg.stats()["cpu"]["total_ns"]
        assert used > 0
        cg.freeze()
        a = cg.stats()["cpu"]["total_ns"]
        time.sleep(0.3)
        assert cg.stats()["cpu"]["total_ns"] == a
        cg.thaw()
        time.sleep(0.2)
        assert cg.stats()["cpu"]["total_ns"] > a
    finally:
        cg.destroy()  # kills what is left: our busy loop
        p.wait(timeout=10)
    assert p.returncode == -9
    assert not os.path.exists(cg.paths["freezer"])


def test_missing_controller_is_reported():
    cg = cgroups.Cgroup("nothing", where={})
    with pytest.raises(cgroups.Unavailable, match="memory cgroup controller is not available"):
        cg.create({"memory": 1 << 20})


def test_container_is_in_its_cgroup_in_every_hierarchy(bundles):
    c = bundles.make(["sh", "-c", "while :; do sleep 0.1; done"])
    pid = c.spawn()
    c.start()
    name = c.config["cgroup"]["name"]
    with open("/proc/%d/cgroup" % pid) as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    # every hierarchy, systemd's tracking ones included, so the engine's unit can stop alone
    for _, ctrls, path in lines:
        if ctrls in ("", "name=systemd") or set(ctrls.split(",")) & set(cgroups.CONTROLLERS):
            assert path.endswith("/hostbridge/" + name), (ctrls, path)
    c.kill(9)
    c.wait(timeout=10)


def test_v2_device_rules_by_ebpf():
    # hybrid host: the cgroup2 mount has no devices controller, yet an attached device
    # program is enforced for processes in it, exactly as on a v2-only host
    v2 = _v2_mount()
    cg = cgroups.Cgroup("v2-dev-%d" % os.getpid(), where={"devices": ("v2", v2)})
    cg.create({})
    try:
        cg.restrict_devices()
        script = ("read go; mknod /tmp/hb-dev-test-%d b 7 0 && echo made; "
                  "head -c 1 /tmp/hb-dev-test-%d > /dev/null || echo refused; "
                  "head -c 3 /dev/zero | wc -c; rm -f /tmp/hb-dev-test-%d" % ((os.getpid(),) * 3))
        p = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        cg.add(p.pid)
        out, err = p.communicate(b"go\n", timeout=20)
        assert out.split() == [b"made", b"refused", b"3"], err
        assert b"Operation not permitted" in err
    finally:
        cg.destroy()


def test_device_program_shape():
    from hostbridge.guest.runtime import devices

    prog = devices.program(["c 1:3 rwm", "b *:* m"])
    assert len(prog) % 8 == 0
    # 6 loads/shifts, rule 1: type, major, minor + allow/exit, rule 2: type, access (3) + allow/exit, deny/exit
    assert len(prog) // 8 == 6 + (3 + 2) + (4 + 2) + 2


def _cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


def test_fork_into_cgroup_seeds_a_cgroup2_directly():
    """clone3(CLONE_INTO_CGROUP): the child is in the cgroup from its first instruction, with no
    move (so no wait on the kernel's cgroup lock); the parent stays where it was."""
    from hostbridge.guest.runtime import ns

    mnt = _cgroup2_mount()
    if mnt is None:
        pytest.fail("no cgroup2 mount on this host")
    d = os.path.join(mnt, "hb-test-clone3-%d" % os.getpid())
    os.mkdir(d)
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        r, w = os.pipe()
        pid = ns.fork_into_cgroup(fd)
        if pid == 0:  # the child: say where it is, and go
            with open("/proc/self/cgroup") as f:
                os.write(w, [line for line in f if line.startswith("0::")][0].encode())
            os._exit(3)
        os.close(w)
        os.close(fd)
        seen = os.read(r, 4096).decode()
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        assert seen.strip().endswith("/" + os.path.basename(d))
        with open("/proc/self/cgroup") as f:
            assert os.path.basename(d) not in f.read()
    finally:
        os.rmdir(d)


def test_fork_into_cgroup_fails_cleanly_on_a_bad_fd():
    from hostbridge.guest.runtime import ns

    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)  # not a cgroup2 directory
    try:
        with pytest.raises(OSError):
            ns.fork_into_cgroup(fd)
    finally:
        os.close(fd)
