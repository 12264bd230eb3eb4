"""Cgroup hierarchies: placement, and the v2 code path on this host's cgroup2 mount."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from hostbridge.guest.runtime import cgroups

pytestmark = pytest.mark.root


def test_layout_finds_every_controller_once():
    lay = cgroups.layout()
    assert {"memory", "cpu", "pids"} <= set(lay)
    for ver, mnt in lay.values():
        assert ver in ("v1", "v2") and os.path.isdir(mnt)


def test_v1_paths_nest_under_our_own_cgroup():
    cg = cgroups.Cgroup("placement-probe")
    own, _ = cgroups._own_paths()
    for c, p in cg.paths.items():
        ver, mnt = cgroups.layout()[c]
        assert p.endswith("/hostbridge/placement-probe")
        if ver == "v1":
            assert p == os.path.normpath("%s/%s/hostbridge/placement-probe" % (mnt, own.get(c, "/")))


def _v2_mount():
    _, v2 = cgroups._mounts()
    if not v2:
        pytest.skip("no cgroup2 mount on this host")
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
