"""A container sees its own pids, hostname, mounts and filesystem, and hides the host's."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.root


def test_command_is_pid_1(bundles):
    _, rec, out, _ = bundles.run(["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"])
    assert rec["exit_code"] == 0
    assert out.splitlines() == ["1", "sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' ' "]


def test_host_processes_are_invisible(bundles):
    _, rec, out, _ = bundles.run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    # sh, ls, grep at most: the host's hundreds of pids are not there
    assert rec["exit_code"] == 0 and int(out) <= 4


def test_hostname_is_the_containers(bundles):
    c, rec, out, _ = bundles.run(["hostname"])
    assert rec["exit_code"] == 0
    assert out.strip() == c.config["hostname"] != os.uname().nodename


def test_mounts_are_the_containers_own(bundles):
    c, _, out, _ = bundles.run(["cat", "/proc/mounts"])
    targets = [line.split()[1] for line in out.splitlines()]
    assert targets[0] == "/" and out.splitlines()[0].split()[2] == "overlay"
    for t in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"):
        assert t in targets
    assert not any(t.startswith(("/tmp/", "/work", "/root")) for t in targets)
    with open("/proc/self/mounts") as f:
        assert c.config["rootfs"]["merged"] not in f.read()  # never visible on the host


def test_writes_stay_in_the_containers_upper_dir(bundles, busybox_lower):
    a, rec, _, _ = bundles.run(["sh", "-c", "echo mine > /etc/mark && cat /etc/mark"])
    assert rec["exit_code"] == 0
    with open(os.path.join(a.config["rootfs"]["upper"], "etc", "mark")) as f:
        assert f.read() == "mine\n"
    assert not os.path.exists(os.path.join(busybox_lower, "etc", "mark"))
    _, rec, _, err = bundles.run(["cat", "/etc/mark"])
    assert rec["exit_code"] == 1 and "No such file" in err


def test_default_capabilities(bundles):
    _, _, out, _ = bundles.run(["grep", "-E", "^Cap(Bnd|Eff|Inh)|NoNewPrivs", "/proc/self/status"])
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert int(fields["CapBnd"], 16) == int(fields["CapEff"], 16) == 0xa80425fb  # docker's set
    assert int(fields["CapInh"], 16) == 0
    assert fields["NoNewPrivs"] == "1"


def test_cap_drop_all_and_add(bundles):
    _, _, out, _ = bundles.run(["grep", "-E", "^Cap(Bnd|Eff)", "/proc/self/status"],
                               process={"cap_drop": ["ALL"]})
    assert [int(line.split()[1], 16) for line in out.splitlines()] == [0, 0]
    _, _, out, _ = bundles.run(["grep", "^CapEff", "/proc/self/status"],
                               process={"cap_drop": ["ALL"], "cap_add": ["NET_ADMIN"]})
    assert int(out.split()[1], 16) == 1 << 12


def test_non_root_user_has_no_effective_caps(bundles):
    _, rec, out, _ = bundles.run(["sh", "-c", "id; grep -E '^Cap(Eff|Bnd)' /proc/self/status; echo $HOME"],
                                 process={"user": "ana"})
    assert rec["exit_code"] == 0
    lines = out.splitlines()
    assert lines[0].startswith("uid=1000(ana) gid=1000(ana) groups=100(users),1000(ana)") or \
        lines[0].startswith("uid=1000(ana) gid=1000(ana) groups=1000(ana),100(users)")
    assert int(lines[1].split()[1], 16) == 0 and int(lines[2].split()[1], 16) == 0xa80425fb
    assert lines[3] == "/home/ana"


def test_masked_and_readonly_proc_paths(bundles):
    # this kernel may lack /proc/kcore; timer_list and acpi exist everywhere we run
    masked = [p for p in ("/proc/kcore", "/proc/timer_list", "/proc/keys", "/proc/acpi")
              if os.path.exists(p)]
    with open("/proc/timer_list") as f:
        assert os.path.getsize("/proc/timer_list") == 0 and f.read()  # sized 0, yet not empty
    script = "; ".join("wc -c < %s" % p for p in masked if os.path.isfile(p))
    script += "; grep -E ' /proc/(kcore|timer_list|keys|acpi|sys) ' /proc/mounts"
    script += "; echo 1 > /proc/sys/kernel/ns_last_pid || echo refused"
    _, _, out, err = bundles.run(["sh", "-c", script])
    lines = out.splitlines()
    nfiles = len([p for p in masked if os.path.isfile(p)])
    assert lines[:nfiles] == ["0"] * nfiles
    mounted = {line.split()[1]: line.split() for line in lines[nfiles:-1]}
    assert set(mounted) == set(masked) | {"/proc/sys"}
    assert mounted["/proc/sys"][3].startswith("ro,")
    if "/proc/acpi" in mounted:
        assert mounted["/proc/acpi"][2] == "tmpfs" and mounted["/proc/acpi"][3].startswith("ro")
    assert lines[-1] == "refused" and "Read-only file system" in err


def test_readonly_rootfs_refuses_writes(bundles):
    _, rec, out, err = bundles.run(["sh", "-c", "touch /x || echo refused; touch /dev/shm/ok && echo shm"],
                                   rootfs={"readonly": True})
    assert rec["exit_code"] == 0
    assert out.split() == ["refused", "shm"] and "Read-only file system" in err


def test_extra_mounts_bind_and_tmpfs(bundles, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("from host\n")
    mounts = [{"type": "bind", "source": str(src), "destination": "/data", "options": ["ro", "rbind"]},
              {"type": "tmpfs", "source": "tmpfs", "destination": "/scratch", "options": ["size=1m"]}]
    _, rec, out, _ = bundles.run(["sh", "-c", "cat /data/f; touch /data/g || echo ro; "
                                 "touch /scratch/a && grep ' /scratch ' /proc/mounts"], mounts=mounts)
    assert rec["exit_code"] == 0
    lines = out.splitlines()
    assert lines[0] == "from host" and lines[1] == "ro" and "tmpfs" in lines[2] and "size=1024k" in lines[2]
    assert not (src / "g").exists()


def test_bind_destination_through_symlink_stays_inside(bundles, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("x\n")
    escape = tmp_path / "escape"
    escape.mkdir()
    # /bin/busybox's applet links point at /bin/busybox; make one pointing out of the root
    c = bundles.make(["sh", "-c", "cat /evil/f"],
                     mounts=[{"type": "bind", "source": str(src), "destination": "/evil", "options": []}])
    upper = c.config["rootfs"]["upper"]
    os.symlink(str(escape), os.path.join(upper, "evil"))
    c.spawn()
    c.start()
    rec = c.wait(timeout=20)
    assert rec["exit_code"] == 0
    assert os.listdir(escape) == []  # the mount landed inside the root, not on the host dir


def test_cleanup_after_exit(bundles):
    c, rec, _, _ = bundles.run(["true"])
    from hostbridge.guest.runtime.cgroups import Cgroup

    cg = Cgroup(c.config["cgroup"]["name"])
    assert rec["exit_code"] == 0
    import time

    deadline = time.monotonic() + 5
    while os.path.exists(c.sock_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(c.sock_path)
    assert not any(os.path.exists(d) for d in cg.dirs())
    with open("/proc/self/mountinfo") as f:
        assert c.config["rootfs"]["merged"] not in f.read()
    assert c.read_exit()["exit_code"] == 0


def test_host_namespaces(bundles):
    ns = {"net": "host", "pid": "host", "ipc": "host", "uts": "host"}
    _, rec, out, _ = bundles.run(["sh", "-c", "echo $$; hostname; readlink /proc/self/ns/net; "
                                 "ls /sys/class/net | grep -c .; grep ' /sys ' /proc/mounts"],
                                 namespaces=ns)
    lines = out.splitlines()
    assert rec["exit_code"] == 0
    assert int(lines[0]) != 1 and lines[1] == os.uname().nodename
    assert lines[2] == os.readlink("/proc/self/ns/net")
    assert int(lines[3]) > 1  # the host's interfaces, through a read-only bind of its /sys
    assert lines[4].split()[3].startswith("ro")


def test_network_none_has_only_loopback_up(bundles):
    _, _, out, _ = bundles.run(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
                               "grep ' /sys ' /proc/mounts"], namespaces={"net": "none"})
    lines = out.split("\n")
    assert lines[0] == "lo" and lines[1] in ("unknown", "up")
    assert lines[2].split()[2] == "sysfs" and lines[2].split()[3].startswith("ro")


def test_join_another_containers_netns(bundles):
    a = bundles.make(["sh", "-c", "while :; do sleep 0.1; done"])
    pid = a.spawn()
    a.start()
    _, _, out, _ = bundles.run(["readlink", "/proc/self/ns/net"],
                               namespaces={"net": "/proc/%d/ns/net" % pid})
    assert out.strip() == os.readlink("/proc/%d/ns/net" % pid)


def test_privileged_has_every_capability_and_no_masks(bundles):
    from hostbridge.guest.runtime import caps

    _, _, out, _ = bundles.run(["sh", "-c", "grep CapEff /proc/self/status; "
                               "grep -c ' /proc/timer_list ' /proc/mounts"],
                               process={"privileged": True})
    lines = out.split()
    assert int(lines[1], 16) == caps.own_bounding()  # everything we have to give
    assert lines[2] == "0"


def test_sys_fs_cgroup_shows_the_containers_own_limits(bundles):
    _, rec, out, err = bundles.run(["sh", "-c", "cat /proc/self/cgroup | grep -c ':/$'; "
                                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                   "/sys/fs/cgroup/memory.max 2>/dev/null; touch /sys/fs/cgroup/x"],
                                   cgroup={"memory": 48 << 20})
    assert rec["exit_code"] == 1  # the touch
    lines = out.split()
    assert int(lines[0]) >= 2  # its own cgroup is its root, in every hierarchy it has one in
    assert str(48 << 20) in lines[1:]
    assert "Read-only file system" in err


def test_vfs_rootfs_dir(bundles, busybox_lower, tmp_path):
    import shutil

    rootdir = str(tmp_path / "vfs-rootfs")
    shutil.copytree(busybox_lower, rootdir, symlinks=True)
    _, rec, out, _ = bundles.run(["sh", "-c", "echo written > /etc/vfs; grep ' / ' /proc/mounts"],
                                 rootfs={"driver": "vfs", "path": rootdir})
    assert rec["exit_code"] == 0
    with open(os.path.join(rootdir, "etc", "vfs")) as f:
        assert f.read() == "written\n"
    assert out.split()[1] == "/"
    with open("/proc/self/mountinfo") as f:
        assert rootdir not in f.read()


def test_devices_cgroup_refuses_host_block_devices(bundles):
    from hostbridge.guest.runtime import cgroups

    # the premise from /proc/mounts, not from the code under test: where the host has a v1
    # devices hierarchy, layout() must find it (a broken probe fails here, not skips)
    with open("/proc/self/mounts") as f:
        v1_devices = any(line.split()[2] == "cgroup" and "devices" in line.split()[3].split(",") for line in f)
    if not v1_devices:
        pytest.skip("host kernel: no v1 devices controller (device rules are enforced through it only)")
    assert cgroups.layout()["devices"][0] == "v1"
    script = ("mknod /tmp/disk b 7 0 && echo made; head -c 1 /tmp/disk >/dev/null || echo refused; "
              "echo ok > /dev/null && head -c 4 /dev/zero | wc -c")
    _, rec, out, err = bundles.run(["sh", "-c", script])
    assert rec["exit_code"] == 0
    assert out.split() == ["made", "refused", "4"]
    assert "Operation not permitted" in err


def test_sysctls_and_domainname(bundles):
    key = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    with open(key) as f:
        host_value = f.read()
    _, rec, out, _ = bundles.run(["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                                 "cat /proc/sys/kernel/domainname"],
                                 sysctls={"net.ipv4.ip_unprivileged_port_start": "80"},
                                 domainname="example.test")
    assert rec["exit_code"] == 0 and out.split() == ["80", "example.test"]
    with open(key) as f:
        assert f.read() == host_value  # set in the container's network namespace only


def test_device_bound_in_is_allowed(bundles):
    # --device: the node comes in as a bind mount and is usable; others stay refused
    mounts = [{"type": "bind", "source": "/dev/loop-control", "destination": "/dev/loop-control",
               "options": []}]
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("host kernel: no /dev/loop-control on this host")
    _, rec, out, err = bundles.run(["sh", "-c", "head -c 0 /dev/loop-control && echo usable; "
                                   "mknod /tmp/l b 7 0; head -c 1 /tmp/l || echo refused"],
                                   mounts=mounts)
    assert out.split() == ["usable", "refused"], err
