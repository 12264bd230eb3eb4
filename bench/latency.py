"""Latencies the tests used to assert, measured here instead, hostbridge's engine beside dockerd.

    python3 bench/latency.py [--runs 5] [--logs-only]

Run as root from the repository root. Each figure is a median of ``--runs`` runs, both daemons
driven by the stock docker CLI, interleaved (the machine is shared and noisy):

- ``docker logs -f`` of an exited container returns (was a test's < 2 s);
- ``docker logs -f -t``: a line's delay from its timestamp to the reader (was a test's median < 0.5 s);
- ``docker stats --no-stream`` of one busy container, and of all (was a test's < 2 s and < 3 s);
- ``--cpus 0.5``: the CPU a busy loop gets over 2 s, as a fraction of half a CPU (was a test's
  ±30 %; target: as close to 1.0 as dockerd's).

Prints figures and ratios (target: <= 1.0x dockerd's time); asserts nothing.
"""

from __future__ import annotations

import argparse
import calendar
import os
import select
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import SideBySide, report  # noqa: E402


def _docker(env, *args, timeout=60):
    r = subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError("docker %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def _stamp(text):
    head, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)


def follow_exited(env, i):
    _docker(env, "run", "--name", "lat-ex%d" % i, "--network", "none", "busybox", "sh", "-c", "echo a; echo b")
    t = time.perf_counter()
    _docker(env, "logs", "-f", "lat-ex%d" % i)
    return time.perf_counter() - t


def follow_delay(env, i):
    """Median delay (s) from a line's timestamp to the reader, over 6 lines 0.3 s apart."""
    name = "lat-fl%d" % i
    _docker(env, "run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c",
            "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done")
    p = subprocess.Popen(["docker", "logs", "-f", "-t", name], env=env, stdout=subprocess.PIPE, bufsize=0)
    delays = []
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if not select.select([p.stdout], [], [], 5)[0]:
                break
            line = p.stdout.readline()
            if not line:
                break
            got = time.time()
            delays.append(got - _stamp(line.decode().split(" ", 1)[0]))
    finally:
        p.kill()
        p.wait()
    return statistics.median(delays[1:]) if len(delays) > 1 else float("nan")


def stats_once(env, names):
    t = time.perf_counter()
    _docker(env, "stats", "--no-stream", *names)
    return time.perf_counter() - t


def cpu_share(env, i, seconds=2.0):
    """CPU a busy loop under ``--cpus 0.5`` used over ``seconds``, as a fraction of half a CPU
    (its process's own utime + stime from /proc)."""
    name = "lat-cpu%d" % i
    _docker(env, "run", "-d", "--name", name, "--network", "none", "--cpus", "0.5", "busybox", "sh", "-c",
            "while :; do :; done")
    pid = int(_docker(env, "inspect", "-f", "{{.State.Pid}}", name))
    tick = os.sysconf("SC_CLK_TCK")

    def used():
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    time.sleep(0.3)  # past start-up
    u0, t0 = used(), time.monotonic()
    time.sleep(seconds)
    u1, wall = used(), time.monotonic() - t0
    _docker(env, "rm", "-f", name)
    return (u1 - u0) / (0.5 * wall)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--logs-only", action="store_true", help="only the two docker logs -f figures")
    args = ap.parse_args()
    with SideBySide() as sb:
        figures = {name: {"exited": [], "delay": [], "stats1": [], "stats_all": [], "cpu": []} for name in sb.envs}
        for env in sb.envs.values():
            _docker(env, "run", "-d", "--name", "lat-busy", "--network", "none", "busybox", "sh", "-c",
                    "while true; do :; done")
        for i in range(args.runs):
            for name, env in sb.envs.items():
                figures[name]["exited"].append(follow_exited(env, i))
                figures[name]["delay"].append(follow_delay(env, i))
                if args.logs_only:
                    continue
                figures[name]["stats1"].append(stats_once(env, ["lat-busy"]))
                figures[name]["stats_all"].append(stats_once(env, []))
                figures[name]["cpu"].append(cpu_share(env, i))
        for key, label in (("exited", "logs -f of an exited container"), ("delay", "logs -f line delay (median)"),
                           ("stats1", "stats --no-stream (one container)"),
                           ("stats_all", "stats --no-stream (all running)")):
            if args.logs_only and key.startswith("stats"):
                continue
            report(label, statistics.median(figures["hostbridge"][key]), statistics.median(figures["dockerd"][key]),
                   1.0)
        for name in sb.envs if not args.logs_only else ():
            print("%-10s --cpus 0.5: a busy loop got %.2f of half a CPU (median; 1.0 is exact)"
                  % (name, statistics.median(figures[name]["cpu"])))


if __name__ == "__main__":
    main()
