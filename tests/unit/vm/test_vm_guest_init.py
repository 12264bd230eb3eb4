"""Pure pieces of the guest's PID 1 (provision/guest-init.py); the vm tier boots the real thing."""

import importlib.util
import os
import struct
import time

from hostbridge.machines.image import PROVISION_DIR


def load_init():
    spec = importlib.util.spec_from_file_location("guest_init", os.path.join(PROVISION_DIR, "guest-init.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sysctl_files_are_parsed_like_sysctl_does():
    init = load_init()
    text = "# comment\n; other comment\n\nnet.ipv4.ip_forward = 1\n-net.bridge.bridge-nf-call-iptables=1\nbad line\n"
    assert init.parse_sysctl(text) == [("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")]


def test_power_button_press_is_recognised_in_input_events():
    init = load_init()
    ev = init.INPUT_EVENT

    def event(etype, code, value):
        return ev.pack(0, 0, etype, code, value)

    sync = event(0, 0, 0)
    assert init.power_pressed(event(1, 116, 1) + sync)
    assert not init.power_pressed(event(1, 116, 0) + sync)  # the release alone
    assert not init.power_pressed(event(1, 30, 1) + sync)  # another key
    assert not init.power_pressed(b"\0" * (ev.size - 1))
    assert ev.size == struct.calcsize("llHHi")


def test_the_init_refuses_to_run_as_a_normal_process():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, os.path.join(PROVISION_DIR, "guest-init.py")], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1 and "must run as PID 1" in proc.stderr


def test_cpu_time_counts_work_not_idle_nor_iowait():
    init = load_init()
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  %d 1 2 9000 500 3 4 5 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n" % (hz * 10)
    assert init.cpu_seconds(stat) == (hz * 10 + 1 + 2 + 3 + 4 + 5) / hz


def test_droppable_cache_leaves_out_shmem_and_dirty_pages():
    init = load_init()
    meminfo = "MemTotal: 1000 kB\nCached: 300 kB\nShmem: 100 kB\nDirty: 20 kB\nSReclaimable: 40 kB\nHugePages_Total: 0\n"
    assert init.droppable_bytes(meminfo) == (300 - 100 - 20 + 40) * 1024


class Clock:
    def __init__(self):
        self.now, self.busy = 1000.0, 0.0


# /proc/buddyinfo after 20 containers were removed (measured): ~54 MiB free in blocks below 128 KiB.
SCATTERED = ("Node 0, zone      DMA      0      0      0      0      0      1      1      1      0      1      3\n"
             "Node 0, zone    DMA32   1818   1221    697    441    197     83     37     14      6      4    174\n")


def test_unreportable_memory_is_free_blocks_below_the_reporting_order():
    init = load_init()
    page = os.sysconf("SC_PAGE_SIZE")
    assert init.unreportable_bytes(SCATTERED, 5) == (1818 + 1221 * 2 + 697 * 4 + 441 * 8 + 197 * 16) * page
    assert init.unreportable_bytes(SCATTERED, 0) == 0
    assert init.unreportable_bytes(SCATTERED, 1) == 1818 * page
    assert init.unreportable_bytes("", 5) == 0


def idle_reclaim(init, monkeypatch, tmp_path, after, clock, buddyinfo=""):
    """An IdleReclaim reading a fake clock, CPU time, meminfo and buddyinfo; drop_caches and
    compact_memory are temp files."""
    hz = os.sysconf("SC_CLK_TCK")
    drops = tmp_path / "drop_caches"
    texts = {"/proc/stat": lambda: "cpu %d 0 0 0 0 0 0 0\n" % round(clock.busy * hz),
             "/proc/meminfo": lambda: "Cached: %d kB\nSReclaimable: 0 kB\n" % (64 << 10),
             "/proc/buddyinfo": lambda: buddyinfo}
    monkeypatch.setattr(init, "read_text", lambda path: texts[path]())
    monkeypatch.setattr(init.time, "monotonic", lambda: clock.now)
    real_open = open
    files = {"/proc/sys/vm/drop_caches": drops, "/proc/sys/vm/compact_memory": tmp_path / "compact_memory"}
    monkeypatch.setattr(init, "open", lambda path, *a, **k: real_open(files.get(path, path), *a, **k), raising=False)
    monkeypatch.setattr(init, "log", lambda msg: None)
    return init.IdleReclaim(after), drops


def test_idle_guest_drops_its_caches_once_then_again_only_after_work(monkeypatch, tmp_path):
    init = load_init()
    clock = Clock()
    reclaim, drops = idle_reclaim(init, monkeypatch, tmp_path, 30, clock)

    def step(seconds, busy_per_s=0.0):
        clock.now += seconds
        clock.busy += seconds * busy_per_s
        wait = reclaim.poll()
        if reclaim.worker is not None:  # the reclaim runs beside PID 1's loop
            reclaim.worker.join(10)
        return wait

    assert step(10) == init.IDLE_SAMPLE and step(10) == init.IDLE_SAMPLE
    assert not drops.exists()  # idle 20 s only
    step(10)
    assert drops.read_text() == "3"
    drops.unlink()
    step(10), step(10)
    assert not drops.exists()  # once per idle stretch
    step(10, busy_per_s=0.5)  # containers work
    step(10), step(10)
    assert not drops.exists()
    step(10)
    assert drops.read_text() == "3"


def test_idle_reclaim_zero_never_looks(monkeypatch, tmp_path):
    init = load_init()
    reclaim, drops = idle_reclaim(init, monkeypatch, tmp_path, 0, Clock())
    assert reclaim.poll() is None and not drops.exists()


def test_idle_guest_compacts_memory_scattered_below_the_reporting_order(monkeypatch, tmp_path):
    init = load_init()
    clock = Clock()
    reclaim, drops = idle_reclaim(init, monkeypatch, tmp_path, 30, clock, buddyinfo=SCATTERED)
    compact = tmp_path / "compact_memory"
    for _ in range(3):
        clock.now += 10
        reclaim.poll()
    reclaim.worker.join(10)
    assert drops.read_text() == "3" and compact.read_text() == "1"


def test_idle_guest_does_not_compact_memory_already_in_reportable_blocks(monkeypatch, tmp_path):
    init = load_init()
    clock = Clock()
    whole = "Node 0, zone    DMA32      2      1      2      1      3      0      2      2      1      3    199\n"
    reclaim, drops = idle_reclaim(init, monkeypatch, tmp_path, 30, clock, buddyinfo=whole)
    for _ in range(3):
        clock.now += 10
        reclaim.poll()
    reclaim.worker.join(10)
    assert drops.read_text() == "3" and not (tmp_path / "compact_memory").exists()


def test_a_slow_reclaim_never_holds_pid_1s_loop(monkeypatch, tmp_path):
    import threading

    init = load_init()
    clock = Clock()
    reclaim, drops = idle_reclaim(init, monkeypatch, tmp_path, 30, clock)
    go, seen = threading.Event(), []
    monkeypatch.setattr(reclaim, "reclaim", lambda idle: (seen.append(idle), go.wait(10)))
    for _ in range(3):
        clock.now += 10
        assert reclaim.poll() == init.IDLE_SAMPLE  # back at once, the reclaim still running
    assert seen == [30] and reclaim.worker.is_alive()
    clock.now += 10
    clock.busy += 5  # the reclaim's own CPU time: no sign of work
    assert reclaim.poll() == init.IDLE_SAMPLE and reclaim.worker is not None
    go.set()
    reclaim.worker.join(10)
    reclaim.poll()  # a new baseline once it is done
    assert reclaim.worker is None and (reclaim.busy, reclaim.dropped) == (clock.busy, True)


def _preloader(tmp_path):
    """A stand-in for ENGINE_CONTROL's `preload`: it records the line it reads on its stdin
    (EOF: an empty file), as the real one runs the engine on "go" and ends on anything else."""
    script = tmp_path / "control"
    script.write_text("#!/bin/sh\n[ \"$1\" = preload ] || exit 2\nIFS= read -r line; printf '%%s' \"$line\" > %s\n"
                      % (tmp_path / "got"))
    script.chmod(0o755)
    return str(script)


def _wait_exit(pid):
    _, status = os.waitpid(pid, 0)
    return status


def test_the_engine_started_ahead_runs_on_go_and_its_exit_is_seen(monkeypatch, tmp_path):
    init = load_init()
    monkeypatch.setattr(init, "ENGINE_CONTROL", _preloader(tmp_path))
    monkeypatch.setattr(init, "ENGINE_PIDFILE", str(tmp_path / "no-pidfile"))
    boot = init.Init()
    boot.preload_engine()
    pid, _ = boot.preload
    assert boot.go_preloaded() and boot.preload is None and boot.children[pid] == "engine"
    deadline = time.monotonic() + 10
    while boot.engine_exited is None and time.monotonic() < deadline:  # as SIGCHLD has the init reap
        boot.reap()
        time.sleep(0.02)
    assert (tmp_path / "got").read_text() == "go"
    assert boot.engine_exited is not None and boot.engine_died()  # told to the host at once, not after ENGINE_WAIT


def test_an_engine_started_ahead_that_is_not_wanted_ends_and_a_dead_one_is_started_the_usual_way(monkeypatch,
                                                                                                  tmp_path):
    init = load_init()
    monkeypatch.setattr(init, "ENGINE_CONTROL", _preloader(tmp_path))
    boot = init.Init()
    boot.preload_engine()
    pid, _ = boot.preload
    boot.end_preload()  # no data disk, or no engine to start: EOF
    _wait_exit(pid)
    assert (tmp_path / "got").read_text() == "" and boot.preload is None and not boot.go_preloaded()
    # One that died before the go: the write fails, and the init starts the engine itself.
    boot.preload_engine()
    pid, wfd = boot.preload
    os.kill(pid, 9)
    _wait_exit(pid)
    assert not boot.go_preloaded() and pid not in boot.children
    # No control script in the image: nothing started ahead.
    monkeypatch.setattr(init, "ENGINE_CONTROL", str(tmp_path / "missing"))
    boot.preload_engine()
    assert boot.preload is None
