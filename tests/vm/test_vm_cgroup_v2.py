"""Container limits on a real unified cgroup v2 hierarchy: the QEMU guest's (TCG here).

This host's cgroup2 mount lends no memory/cpu/pids controller, so the engine's v2 limits can
only be proven in the guest. One machine is brought up for the module with `hostbridge up`;
the stock `docker` CLI reaches its engine through the tunnel, and the cgroup files are read in
the guest over the machine's own pinned SSH connection. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import docker
import pytest

from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not shutil.which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
NAME = "cgv2"
BOOT = 600  # seconds `up` may take under TCG on a busy host
CGROOT = "/sys/fs/cgroup"
ENGINE = "/usr/local/lib/hostbridge/engine.pyz"
# grows a shell variable without bound (busybox sh): the memory cgroup must stop it
HOG = "x=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=0; while [ $i -lt 40 ]; do x=$x$x; i=$((i+1)); done"


class Guest(HostbridgeHome):
    """The machine: `hostbridge` and `docker` on the host, shell commands in the guest."""

    ssh = None

    def connect(self):
        """Open an SSH session with the machine's pinned host key and client key."""
        from hostbridge.tunnel.known_hosts import KnownHosts
        from hostbridge.tunnel.ssh import Connection, SSHTarget

        mdir = self.machine_dir(NAME)
        with open(os.path.join(mdir, "machine.json")) as f:
            rec = json.load(f)
        self.ssh = Connection(SSHTarget.from_dict(rec["ssh"]), KnownHosts(os.path.join(mdir, "known_hosts")),
                              look_for_keys=False, allow_agent=False).open()
        script = self.hb("env", "--shell", "bash", NAME).stdout
        host = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                              capture_output=True, text=True, check=True).stdout
        assert host.startswith("unix://")
        self.env["DOCKER_HOST"] = host

    def sh(self, command, timeout=60, check=True):
        """Run ``command`` in the guest; its stdout (text)."""
        status, out, err = self.ssh.run(command, timeout=timeout)
        if check:
            assert status == 0, "guest: %s: %s" % (command, err.decode(errors="replace"))
        return out.decode()

    def docker(self, *args, timeout=120):
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    def run_d(self, *args):
        """``docker run -d ARGS``; the new container's full id."""
        r = self.docker("run", "-d", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def cg(self, cid, *files):
        """The contents of the container's cgroup files (one string each, stripped)."""
        out = self.sh(" ; ".join("cat %s/hostbridge/%s/%s; echo @@" % (CGROOT, cid, f) for f in files))
        return [part.strip() for part in out.split("@@")[:len(files)]]


def _kv(text):
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


@pytest.fixture(scope="module")
def guest(tmp_path_factory, busybox_rootfs_tar):
    g = Guest(str(tmp_path_factory.mktemp("cgv2")), shared_image_cache())
    try:
        r = g.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "768", "--disk", "2G",
                 timeout=BOOT)
        assert r.returncode == 0, r.stderr
        g.connect()
        r = g.docker("import", busybox_rootfs_tar, "busybox:latest")
        assert r.returncode == 0, r.stderr
        yield g
    finally:
        if g.ssh is not None:
            g.ssh.close()
        g.hb("destroy", "-f", "--machine", NAME, timeout=120)


@pytest.fixture
def cleanup(guest):
    """Container ids a test started; removed (forced) afterwards."""
    ids = []
    yield ids
    for cid in ids:
        guest.docker("rm", "-f", cid)


def test_the_engine_sees_a_unified_hierarchy_with_the_controllers(guest):
    assert guest.sh("stat -fc %T " + CGROOT).strip() == "cgroup2fs"
    # guest-init mounts it favouring dynamic changes: an exec's cgroup move waits no RCU grace period
    assert "favordynmods" in guest.sh("grep ' %s cgroup2 ' /proc/mounts" % CGROOT)
    assert {"memory", "cpu", "pids"} <= set(guest.sh("cat %s/cgroup.controllers" % CGROOT).split())
    # the engine's own detection, run from the deployed zipapp in the guest
    probe = ("import json, sys; sys.path.insert(0, %r); from hostbridge.guest.runtime import cgroups; "
             "print(json.dumps(cgroups.layout()))" % ENGINE)
    lay = json.loads(guest.sh("python3 -c %s" % json.dumps(probe)))
    for c in ("memory", "cpu", "cpuacct", "pids", "freezer", "devices"):
        assert lay[c] == ["v2", CGROOT], (c, lay)
    assert "cpuset" not in lay or lay["cpuset"][0] == "v2"
    info = guest.docker("info")
    assert "Cgroup Version: 2" in info.stdout, info.stdout
    assert "WARNING" not in info.stderr, info.stderr  # every limit supported: no "No memory limit support"


def test_started_and_exec_processes_are_born_in_the_cgroup_and_limited(guest, cleanup):
    """No move on v2: the first process and exec'd ones are forked into the cgroup (clone3)."""
    cid = guest.run_d("-m", "32m", "busybox", "sleep", "300")
    cleanup.append(cid)
    assert guest.docker("exec", "-d", cid, "sleep", "299").returncode == 0
    procs = set()
    for _ in range(50):  # the detached exec shows up within moments
        procs = set(guest.cg(cid, "cgroup.procs")[0].split())
        if len(procs) >= 2:
            break
        time.sleep(0.1)
    assert len(procs) == 2, procs  # sleep 300 and sleep 299, no helper
    comms = guest.sh("cat " + " ".join("/proc/%s/comm" % p for p in sorted(procs))).split()
    assert comms == ["sleep", "sleep"]
    hog = guest.docker("exec", cid, "tail", "/dev/zero", timeout=180)
    assert hog.returncode == 137, (hog.returncode, hog.stderr)  # the exec is under the 32m limit


def test_memory_limit_oom_kills_with_137(guest, cleanup):
    r = guest.docker("run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c", HOG, timeout=180)
    cleanup.append("hog")
    assert r.returncode == 137, (r.returncode, r.stderr)
    state = json.loads(guest.docker("inspect", "--format", "{{json .State}}", "hog").stdout)
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)


def test_create_writes_docker_semantics_into_the_v2_files(guest, cleanup):
    cid = guest.run_d("-m", "32m", "--memory-swap", "48m", "--memory-reservation", "16m", "--cpu-shares", "512",
                      "--cpuset-cpus", "0", "busybox", "sleep", "600")
    cleanup.append(cid)
    mem_max, swap_max, low, weight, cpus = guest.cg(cid, "memory.max", "memory.swap.max", "memory.low",
                                                    "cpu.weight", "cpuset.cpus")
    # docker's --memory-swap is memory + swap; v2's swap.max is the swap alone
    assert (int(mem_max), int(swap_max), int(low)) == (32 << 20, 16 << 20, 16 << 20)
    assert (weight, cpus) == ("20", "0")  # runc's shares → weight: 1 + (512 - 2) * 9999 // 262142


def test_swap_defaults_to_as_much_as_memory(guest, cleanup):
    cid = guest.run_d("-m", "32m", "busybox", "sleep", "600")
    cleanup.append(cid)
    assert guest.docker("inspect", "-f", "{{.HostConfig.MemorySwap}}", cid).stdout.strip() == str(64 << 20)
    assert guest.cg(cid, "memory.max", "memory.swap.max") == [str(32 << 20), str(32 << 20)]


def test_memory_swappiness_is_discarded_with_dockerd_s_warning(guest, cleanup):
    # v2 has no swappiness knob: dockerd accepts the flag, warns, and keeps nothing (moby's words)
    r = guest.docker("create", "--network", "none", "--memory-swappiness", "60", "busybox", "true")
    assert r.returncode == 0, r.stderr
    cleanup.append(r.stdout.strip())
    assert r.stderr == ("WARNING: Your kernel does not support memory swappiness capabilities or the cgroup is "
                        "not mounted. Memory swappiness discarded.\n")
    assert guest.docker("inspect", "-f", "{{json .HostConfig.MemorySwappiness}}", cleanup[0]).stdout.strip() == "null"


@pytest.mark.parametrize("flags,message", [
    # dockerd 20.10's words for each (checked side by side with Debian's docker.io)
    (["--cpus", "2"], "Range of CPUs is from 0.01 to 1.00, as there are only 1 CPUs available"),
    (["--memory-swap", "64m"], "You should always set the Memory limit when using Memoryswap limit, see usage"),
    (["-m", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["-m", "32m", "--memory-reservation", "64m"],
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    (["--cpu-period", "500"], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (["--cpu-quota", "500"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (["--cpus", "0.5", "--cpu-quota", "20000"], "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
])
def test_limits_the_kernel_or_docker_would_refuse_are_refused_at_create(guest, flags, message):
    r = guest.docker("create", "--network", "none", *flags, "busybox", "true")
    assert r.returncode == 1 and "Error response from daemon: " + message in r.stderr, r.stderr


def test_device_rules_hold_on_v2(guest):
    # v2 has no devices files: the engine's eBPF program must refuse opening a disk node the
    # container may make (mknod is allowed, as docker allows it), and let /dev/zero be
    script = ("mknod /tmp/disk b 253 0 && echo made; head -c 1 /tmp/disk > /dev/null || echo refused; "
              "head -c 3 /dev/zero | wc -c")
    r = guest.docker("run", "--rm", "busybox", "sh", "-c", script)
    assert r.stdout.split() == ["made", "refused", "3"], (r.stdout, r.stderr)
    assert "Operation not permitted" in r.stderr


def test_pids_limit_refuses_forks_beyond_it(guest, cleanup):
    # an inner shell starts up to 30 sleepers against a limit of 20 (bounded by count); ash
    # gives up at the first failed fork. The outer shell then reports with builtins only.
    script = ("cat /sys/fs/cgroup/pids.max; "
              "sh -c 'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done' 2>/tmp/err; "
              "echo inner=$?; set -- /proc/[0-9]*; echo procs=$#; "
              "while read -r l; do echo \"$l\"; done < /tmp/err; kill -9 -1")
    r = guest.docker("run", "--name", "forks", "--pids-limit", "20", "busybox", "sh", "-c", script, timeout=180)
    cleanup.append("forks")
    lines = r.stdout.splitlines()
    assert lines[0] == "20"  # the container's own cgroup namespace shows its pids.max at its root
    assert lines[1] == "inner=2", r.stdout
    assert int(lines[2].split("=")[1]) <= 20
    assert "can't fork" in r.stdout or "Resource temporarily unavailable" in r.stdout


def test_cpus_half_caps_a_busy_loop_and_pause_freezes_it(guest, cleanup):
    cid = guest.run_d("--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done")
    cleanup.append(cid)
    assert guest.cg(cid, "cpu.max") == ["50000 100000"]
    # usage over a wall interval, both read in the guest (its uptime clock) in one command
    d = "%s/hostbridge/%s" % (CGROOT, cid)
    out = guest.sh("sleep 1; cut -d' ' -f1 /proc/uptime; cat %s/cpu.stat; echo @@; sleep 4; "
                   "cut -d' ' -f1 /proc/uptime; cat %s/cpu.stat" % (d, d))
    first, second = out.split("@@")
    t0, s0 = float(first.split()[0]), _kv(first.split("\n", 1)[1])
    t1, s1 = float(second.split()[0]), _kv(second.strip().split("\n", 1)[1])
    share = (s1["usage_usec"] - s0["usage_usec"]) / 1e6 / (t1 - t0)
    # half a core: the quota bites (throttled periods) and the share stays near 0.5; the band
    # is wide below because TCG may leave the guest's only vCPU less than that to give
    assert s1["nr_throttled"] > s0["nr_throttled"], (s0, s1)
    assert 0.15 <= share <= 0.62, share
    # docker's stats JSON carries the same accounting (the SDK: the CLI shows no throttling)
    stats = docker.DockerClient(base_url=guest.env["DOCKER_HOST"]).api.stats(cid, stream=False)
    assert stats["cpu_stats"]["throttling_data"]["throttled_periods"] > 0, stats["cpu_stats"]
    assert stats["cpu_stats"]["cpu_usage"]["usage_in_usermode"] > 0

    r = guest.docker("pause", cid)
    assert r.returncode == 0, r.stderr
    assert guest.docker("inspect", "--format", "{{.State.Status}}", cid).stdout.strip() == "paused"
    freeze, events = guest.cg(cid, "cgroup.freeze", "cgroup.events")
    assert freeze == "1" and "frozen 1" in events.splitlines()
    out = guest.sh("cat %s/cpu.stat; echo @@; sleep 1.5; cat %s/cpu.stat" % (d, d))
    a, b = (_kv(part) for part in out.split("@@"))
    assert b["usage_usec"] - a["usage_usec"] < 20000, (a, b)  # frozen: no more cpu time

    r = guest.docker("unpause", cid)
    assert r.returncode == 0, r.stderr
    freeze, events = guest.cg(cid, "cgroup.freeze", "cgroup.events")
    assert freeze == "0" and "frozen 0" in events.splitlines()
    out = guest.sh("cat %s/cpu.stat; echo @@; sleep 1; cat %s/cpu.stat" % (d, d))
    a, b = (_kv(part) for part in out.split("@@"))
    assert b["usage_usec"] > a["usage_usec"]
    assert guest.docker("inspect", "--format", "{{.State.Status}}", cid).stdout.strip() == "running"


def test_update_changes_the_files_of_a_running_container(guest, cleanup):
    cid = guest.run_d("-m", "64m", "--cpus", "1", "--pids-limit", "50", "busybox", "sleep", "600")
    cleanup.append(cid)
    assert guest.cg(cid, "memory.max", "cpu.max", "pids.max") == [str(64 << 20), "100000 100000", "50"]
    r = guest.docker("update", "-m", "48m", "--memory-swap", "64m", "--memory-reservation", "24m", "--cpus", "0.25",
                     "--pids-limit", "30", cid)
    assert r.returncode == 0, r.stderr
    assert guest.cg(cid, "memory.max", "memory.swap.max", "memory.low", "cpu.max", "pids.max") == [
        str(48 << 20), str(16 << 20), str(24 << 20), "25000 100000", "30"]
    hc = json.loads(guest.docker("inspect", "--format", "{{json .HostConfig}}", cid).stdout)
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (48 << 20, 250000000, 30)
    # the CLI sends every resource, zero for those not given: only the pids limit changes here
    r = guest.docker("update", "--pids-limit", "-1", cid)
    assert r.returncode == 0, r.stderr
    assert guest.cg(cid, "pids.max", "memory.max", "cpu.max") == ["max", str(48 << 20), "25000 100000"]
    hc = json.loads(guest.docker("inspect", "--format", "{{json .HostConfig}}", cid).stdout)
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (48 << 20, 250000000, 0)  # dockerd's record
    r = guest.docker("update", "--cpu-quota", "20000", cid)
    assert r.returncode == 1, r.stderr
    assert ("Cannot update container %s: Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
            "already been set" % cid) in r.stderr
    r = guest.docker("update", "-m", "100m", cid)  # over the recorded memory+swap total of 64m
    assert r.returncode == 1 and "Memory limit should be smaller than already set memoryswap limit" in r.stderr
    r = guest.docker("update", "--memory-swap", "-1", cid)
    assert r.returncode == 0, r.stderr
    assert guest.cg(cid, "memory.swap.max", "memory.max") == ["max", str(48 << 20)]
    # --cpu-quota / --cpu-period write the same file (dockerd refuses mixing them with --cpus)
    cid = guest.run_d("--cpu-quota", "30000", "--cpu-period", "60000", "busybox", "sleep", "600")
    cleanup.append(cid)
    assert guest.cg(cid, "cpu.max") == ["30000 60000"]
    r = guest.docker("update", "--cpu-quota", "45000", cid)
    assert r.returncode == 0, r.stderr
    assert guest.cg(cid, "cpu.max") == ["45000 60000"]


def test_stats_no_stream_shows_the_limit_and_usage(guest, cleanup):
    cid = guest.run_d("--name", "statme", "-m", "48m", "busybox", "sh", "-c",
                      "x=$(head -c 4000000 /dev/zero | tr '\\0' y); sleep 600; echo ${#x}")
    cleanup.append(cid)
    deadline, usage = time.monotonic() + 30, 0
    while time.monotonic() < deadline:  # until the shell holds its 4 MB string (not exec'ing sleep)
        usage = int(guest.cg(cid, "memory.current")[0])
        if usage > 4_000_000:
            break
        time.sleep(0.5)
    r = guest.docker("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}", "statme")
    assert r.returncode == 0, r.stderr
    name, mem, pids = r.stdout.strip().split("|")
    used, limit = (s.strip() for s in mem.split("/"))
    assert (name, limit) == ("statme", "48MiB")
    assert used.endswith("MiB") and 3.0 < float(used[:-3]) < 48, used
    assert int(pids) >= 1


def test_rm_removes_the_containers_cgroup_even_when_paused(guest):
    ids = [guest.run_d("-m", "16m", "busybox", "sleep", "600") for _ in range(2)]
    dirs = ["%s/hostbridge/%s" % (CGROOT, cid) for cid in ids]
    assert guest.sh("test -d %s && test -d %s && echo yes" % tuple(dirs)).strip() == "yes"
    assert guest.docker("pause", ids[1]).returncode == 0
    r = guest.docker("rm", "-f", *ids)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20
    while guest.sh("find %s/hostbridge -mindepth 1 -type d" % CGROOT).split() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert guest.sh("find %s/hostbridge -mindepth 1 -type d" % CGROOT).split() == []


UNIT = CGROOT + "/system.slice/hostbridge.service"
SOCK = "/run/hostbridge/docker.sock"


def _restart_engine(guest, start):
    """Stop the guest's engine and start it with the shell command ``start``; wait until it answers."""
    guest.sh("/etc/init.d/hostbridge stop; %s; i=0; while [ ! -S %s ] && [ $i -lt 150 ]; do sleep 0.2; "
             "i=$((i+1)); done" % (start, SOCK), timeout=90)
    deadline = time.monotonic() + 60
    while guest.docker("version").returncode != 0:
        assert time.monotonic() < deadline, "the engine did not come back"
        time.sleep(0.5)


def _as_systemd_unit(namespace, delegate=True, unit=UNIT):
    """A start command placing the engine in ``unit`` as systemd would (with ``delegate``, the
    slices enable the controllers for it, as for Delegate=yes); with ``namespace``, in a cgroup
    namespace of its own with cgroup2 mounted there, as a container sees it."""
    slice_ = os.path.dirname(unit)
    cmd = "mkdir -p %s && " % unit
    if delegate:
        cmd += "".join("echo '+memory +cpu +pids' > %s/cgroup.subtree_control && " % d for d in (CGROOT, slice_))
    cmd += "echo $$ > %s/cgroup.procs && " % unit
    if not namespace:
        return cmd + "/etc/init.d/hostbridge start"
    return cmd + ("unshare --cgroup --mount --propagation slave sh -c 'umount %s && "
                  "mount -t cgroup2 -o nsdelegate cgroup2 %s && /etc/init.d/hostbridge start'" % (CGROOT, CGROOT))


def _cgroup_of(guest, cid):
    pid = guest.docker("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()
    return guest.sh("cat /proc/%s/cgroup" % pid).strip()


@pytest.fixture(scope="module")
def restore_engine(guest):
    """Put the engine back where the guest's init starts it (the root cgroup) after the tests
    that move it (each starts it where it wants it, so they need no restore in between)."""
    yield
    ids = guest.docker("ps", "-aq").stdout.split()
    if ids:
        guest.docker("rm", "-f", *ids)
    _restart_engine(guest, "/etc/init.d/hostbridge start")
    guest.sh("find %s/system.slice %s/bare.slice -depth -type d -exec rmdir {} \\; 2>/dev/null; true"
             % (CGROOT, CGROOT))


def test_an_engine_in_a_systemd_unit_places_containers_at_the_root(guest, restore_engine, cleanup):
    # a container started before the engine moves keeps running; the new engine still finds
    # its cgroup (where the shim recorded it) to update, pause, list and measure
    survivor = guest.run_d("-m", "24m", "--pids-limit", "12", "busybox", "sleep", "600")
    cleanup.append(survivor)
    # the unit's cgroup holds the engine: children of it could get no controller, the root can
    _restart_engine(guest, _as_systemd_unit(namespace=False))
    engine = guest.sh("cat /proc/$(cat /run/hostbridge/engine.pid)/cgroup").strip()
    assert engine == "0::/system.slice/hostbridge.service"
    cid = guest.run_d("-m", "24m", "--pids-limit", "12", "busybox", "sleep", "600")
    cleanup.append(cid)
    assert _cgroup_of(guest, cid) == "0::/hostbridge/" + cid
    assert guest.cg(cid, "memory.max", "pids.max") == [str(24 << 20), "12"]
    assert guest.sh("ls %s" % UNIT).split().count("init") == 0  # the engine was left where it is

    assert guest.docker("update", "--pids-limit", "9", survivor).returncode == 0
    assert guest.cg(survivor, "pids.max") == ["9"]
    assert guest.docker("pause", survivor).returncode == 0
    assert guest.cg(survivor, "cgroup.freeze") == ["1"]
    assert guest.docker("unpause", survivor).returncode == 0
    top = guest.docker("top", survivor)
    assert top.returncode == 0 and "sleep 600" in top.stdout, top.stderr
    r = guest.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", survivor)
    assert r.stdout.strip().endswith("/ 24MiB"), (r.stdout, r.stderr)


def test_an_engine_in_its_own_cgroup_namespace_moves_itself_to_a_leaf(guest, restore_engine, cleanup):
    # the namespace root is the unit's cgroup, holding the engine: "no internal processes"
    # would refuse to delegate to its containers until the engine leaves it for init/
    _restart_engine(guest, _as_systemd_unit(namespace=True))
    r = guest.docker("run", "--name", "nshog", "-m", "32m", "--pids-limit", "16", "busybox", "sh", "-c",
                     "cat /sys/fs/cgroup/pids.max; " + HOG, timeout=180)
    cleanup.append("nshog")
    assert (r.returncode, r.stdout) == (137, "16\n"), r.stderr
    state = json.loads(guest.docker("inspect", "--format", "{{json .State}}", "nshog").stdout)
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)
    engine = guest.sh("cat /proc/$(cat /run/hostbridge/engine.pid)/cgroup").strip()
    assert engine == "0::/system.slice/hostbridge.service/init"
    assert guest.sh("cat %s/cgroup.procs" % UNIT).split() == []
    assert set(guest.sh("cat %s/cgroup.subtree_control" % UNIT).split()) >= {"memory", "cpu", "pids"}


def test_an_engine_given_no_controllers_says_what_to_delegate(guest, restore_engine):
    # a unit whose slice enables nothing for it (Delegate=no), in its own namespace: limits
    # cannot work, containers without them still do, and both docker and the error say why
    _restart_engine(guest, _as_systemd_unit(namespace=True, delegate=False,
                                            unit=CGROOT + "/bare.slice/hostbridge.service"))
    r = guest.docker("run", "--rm", "-m", "32m", "busybox", "true")
    assert r.returncode == 125
    assert ("the memory cgroup controller is not available on this host (not in /sys/fs/cgroup/cgroup.controllers): "
            "delegate it to the engine (systemd: Delegate=yes) or run without that limit") in r.stderr, r.stderr
    r = guest.docker("run", "--rm", "busybox", "echo", "unlimited")
    assert (r.returncode, r.stdout) == (0, "unlimited\n"), r.stderr
    assert "WARNING: No memory limit support" in guest.docker("info").stderr
