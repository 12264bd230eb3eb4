"""Which cgroup version the engine picks, from mount tables of the three kinds of hosts.

Detection only: the limits themselves are proven on real hierarchies (v1 here in
test_limits.py, v2 in the QEMU guest in tests/vm/test_vm_cgroup_v2.py).
"""

from __future__ import annotations

import pytest

from hostbridge.guest.runtime import cgroups

# /proc/self/mountinfo lines as the kernel writes them (Debian 12 with systemd, CentOS 7, Ubuntu 20.04)
PROC = "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
UNIFIED = PROC + ("30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
                  "rw,nsdelegate,memory_recursiveprot\n")
V1 = PROC + "\n".join([
    "25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:6 - tmpfs tmpfs ro,mode=755",
    "26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup "
    "rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd",
    "29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct",
    "30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory",
    "31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,pids",
    "32 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,freezer",
    "33 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset",
    "34 25 0:31 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,devices",
    "35 25 0:32 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,blkio",
]) + "\n"
HYBRID = V1 + ("27 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 "
               "rw,nsdelegate\n")
ALL_V2 = "cpuset cpu io memory hugetlb pids rdma misc"


def _layout(table, v2_controllers=None):
    return cgroups.layout(cgroups.hierarchies(table), v2_controllers=v2_controllers)


def test_a_unified_only_host_is_v2_for_every_controller():
    lay = _layout(UNIFIED, ALL_V2.split())
    for c in cgroups.CONTROLLERS:
        assert lay[c] == ("v2", "/sys/fs/cgroup"), c
    assert lay[cgroups.UNIFIED] == ("v2", "/sys/fs/cgroup") and cgroups.SYSTEMD not in lay
    assert cgroups.version(lay) == "2"


def test_a_v1_only_host_is_v1_for_every_controller():
    lay = _layout(V1)
    assert lay["cpu"] == lay["cpuacct"] == ("v1", "/sys/fs/cgroup/cpu,cpuacct")  # one hierarchy, two controllers
    for c in ("memory", "pids", "freezer", "cpuset", "devices"):
        assert lay[c] == ("v1", "/sys/fs/cgroup/" + c)
    assert lay[cgroups.SYSTEMD] == ("v1", "/sys/fs/cgroup/systemd")
    assert cgroups.UNIFIED not in lay and cgroups.version(lay) == "1"


def test_a_hybrid_host_keeps_controllers_on_v1_and_tracks_the_unified_mount():
    # systemd's hybrid mode: every controller bound to v1, an empty cgroup2 for tracking only
    lay = _layout(HYBRID, [])
    assert all(lay[c][0] == "v1" for c in cgroups.CONTROLLERS)
    assert lay[cgroups.UNIFIED] == ("v2", "/sys/fs/cgroup/unified")
    assert cgroups.version(lay) == "1"


def test_v2_controllers_the_parent_did_not_delegate_are_absent():
    lay = _layout(UNIFIED, ["cpuset", "io"])
    assert "memory" not in lay and "cpu" not in lay and "pids" not in lay
    # core files of every v2 cgroup: cpu accounting (cpu.stat), freezing, eBPF device rules
    assert lay["cpuacct"] == lay["freezer"] == lay["devices"] == ("v2", "/sys/fs/cgroup")
    cg = cgroups.Cgroup("detect-probe", where=lay)
    with pytest.raises(cgroups.Unavailable, match=r"memory cgroup controller is not available on this host "
                                                   r"\(not in /sys/fs/cgroup/cgroup.controllers\): delegate it"):
        cg.update({"memory": 32 << 20})


def test_the_cgroup2_mount_at_sys_fs_cgroup_wins_over_a_private_one():
    private = "40 30 0:40 / /run/tool/cgroup rw,relatime shared:20 - cgroup2 cgroup2 rw\n"
    lay = _layout(PROC + private + UNIFIED.split("\n", 1)[1], ALL_V2.split())
    assert lay["memory"] == ("v2", "/sys/fs/cgroup")


def test_no_cgroup_mount_at_all():
    assert _layout(PROC) == {}
    assert cgroups.version({}) == "1"
    assert not any(cgroups.features({}).values())  # docker info then warns of every missing limit


def test_info_features_follow_the_controllers():
    assert all(cgroups.features(_layout(UNIFIED, ALL_V2.split())).values())
    undelegated = cgroups.features(_layout(UNIFIED, ["cpuset"]))
    assert undelegated == {"MemoryLimit": False, "SwapLimit": False, "CpuCfsPeriod": False, "CpuCfsQuota": False,
                           "CPUShares": False, "CPUSet": True, "PidsLimit": False}
    assert cgroups.feature_warnings(undelegated) == [
        "WARNING: No memory limit support", "WARNING: No swap limit support", "WARNING: No cpu cfs quota support",
        "WARNING: No cpu cfs period support", "WARNING: No cpu shares support"]


def test_v2_containers_sit_under_the_mount_not_under_the_engine():
    lay = _layout(UNIFIED, ALL_V2.split())
    paths = cgroups.default_paths("abc", lay)
    assert set(paths.values()) == {"/sys/fs/cgroup/hostbridge/abc"}
    assert cgroups.Cgroup("abc", where=lay).dirs() == ["/sys/fs/cgroup/hostbridge/abc"]


def test_mount_options_and_paths_are_parsed_from_mountinfo():
    assert cgroups.hierarchies(HYBRID)[:2] == [
        ("cgroup", "/sys/fs/cgroup/systemd",
         ["rw", "xattr", "release_agent=/usr/lib/systemd/systemd-cgroups-agent", "name=systemd"]),
        ("cgroup", "/sys/fs/cgroup/cpu,cpuacct", ["rw", "cpu", "cpuacct"])]
    assert cgroups.hierarchies(HYBRID)[-1] == ("cgroup2", "/sys/fs/cgroup/unified", ["rw", "nsdelegate"])
