"""The cost of isolation (issue 13): seccomp, namespace joins, close_range, side by side with dockerd.

1. `docker run --rm busybox true`: hostbridge (docker's default profile) vs dockerd   (target <= 0.5x)
   and hostbridge with `--security-opt seccomp=unconfined` (what the filter costs a start)
2. `docker exec C true`: the same three (C started unconfined for the third)         (target <= 0.5x)
3. `docker run --rm --pid container:X --ipc container:X busybox true` (setns joins) vs dockerd
4. in-process: compiling the builtin filter, and one getppid() under it vs unfiltered
5. `docker run --rm busybox true` on a second engine started with `--userns-remap default`
   beside the default engine and dockerd (dockerd's default: no remap); and the first remapped
   run of an image, which copies its layers for the range once

Runs interleaved so load on the machine hits every side alike.
Usage: sudo .venv/bin/python bench/isolation.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Engine, SideBySide, describe, docker, report, write_rootfs_tar  # noqa: E402


def _interleaved(sides, n):
    """``{name: [seconds]}`` for ``sides`` = ``{name: callable}``, run round-robin ``n`` times."""
    times = {name: [] for name in sides}
    for _ in range(n):
        for name, fn in sides.items():
            t = time.perf_counter()
            r = fn()
            times[name].append(time.perf_counter() - t)
            if r.returncode != 0:
                raise SystemExit("%s failed: %s" % (name, r.stderr.strip()))
            time.sleep(0.05)
    return times


def _print(title, times, target=0.5):
    print(title)
    for name, xs in times.items():
        print("  " + describe(name, sorted(xs)))
    med = {k: statistics.median(v) for k, v in times.items()}
    report("  " + title, med["hostbridge"], med["dockerd"], target)
    if "hostbridge unconfined" in med:
        print("  seccomp's share of a hostbridge %s: %+.1f ms" % (
            title.split(":")[0], (med["hostbridge"] - med["hostbridge unconfined"]) * 1e3))
    if "hostbridge remapped" in med:
        report("  " + title + " (remapped)", med["hostbridge remapped"], med["dockerd"], target)
        print("  the user namespace's share of a hostbridge start: %+.1f ms" % (
            (med["hostbridge remapped"] - med["hostbridge"]) * 1e3))


def _remapped(s, run, n):
    """Item 5: a remapped engine beside the two (its own root, busybox imported)."""
    hbr = Engine(os.path.join(s.tmp, "hbr"), args=["--userns-remap", "default"]).start()
    try:
        hbr.import_tar(write_rootfs_tar(os.path.join(s.tmp, "busybox-r.tar")))
        t = time.perf_counter()
        r = docker(hbr.url, *run, "busybox", "true")
        if r.returncode != 0:
            raise SystemExit("remapped run failed: " + r.stderr.strip())
        print("first remapped run (copies the image's layers for the range): %.3fs" % (time.perf_counter() - t))
        _print("docker run --rm busybox true, remap", _interleaved({
            "hostbridge": lambda: docker(s.hb.url, *run, "busybox", "true"),
            "hostbridge remapped": lambda: docker(hbr.url, *run, "busybox", "true"),
            "dockerd": lambda: docker(s.dd.url, *run, "busybox", "true")}, n))
    finally:
        hbr.close()


def _in_process(n=100000):
    from hostbridge.guest.runtime import caps, ns, seccomp, seccomp_profile

    t = time.perf_counter()
    for _ in range(20):
        seccomp.compile_filter(seccomp_profile.default(), caps.DEFAULT)
    compile_ms = (time.perf_counter() - t) / 20 * 1e3
    program = seccomp.program_for("builtin", caps.DEFAULT)
    r, w = os.pipe()
    results = {False: [], True: []}
    for _ in range(7):  # rounds alternate, and the best of each side counts: the host is shared
        for filtered in (False, True):
            pid = os.fork()
            if pid == 0:
                if filtered:
                    ns.prctl(ns.PR_SET_NO_NEW_PRIVS, 1)
                    seccomp.install(program)
                t = time.perf_counter()
                for _ in range(n):
                    os.getppid()
                os.write(w, b"%f\n" % ((time.perf_counter() - t) / n * 1e9))
                os._exit(0)
            os.waitpid(pid, 0)
            results[filtered].append(float(os.read(r, 64)))
    results = [min(results[False]), min(results[True])]
    print("builtin filter: %d instructions, compiled in %.1f ms (once per engine: the zygote keeps it)"
          % (len(program) // 8, compile_ms))
    print("getppid() from Python: %.0f ns unfiltered, %.0f ns under docker's profile (%+.0f ns a call)"
          % (results[0], results[1], results[1] - results[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args()
    _in_process()
    with SideBySide() as s:
        hb, dd = s.hb.url, s.dd.url
        run = ("run", "--rm", "--network", "none")
        for url in (hb, dd):
            docker(url, *run, "busybox", "true")
            docker(url, "run", "-d", "--name", "bx", "--network", "none", "--ipc", "shareable",
                   "busybox", "sleep", "100000")
        _print("docker run --rm busybox true", _interleaved({
            "hostbridge": lambda: docker(hb, *run, "busybox", "true"),
            "hostbridge unconfined": lambda: docker(hb, *run, "--security-opt", "seccomp=unconfined", "busybox", "true"),
            "dockerd": lambda: docker(dd, *run, "busybox", "true")}, a.n))
        docker(hb, "run", "-d", "--name", "bxu", "--network", "none", "--security-opt", "seccomp=unconfined",
               "busybox", "sleep", "100000")
        _print("docker exec C true", _interleaved({
            "hostbridge": lambda: docker(hb, "exec", "bx", "true"),
            "hostbridge unconfined": lambda: docker(hb, "exec", "bxu", "true"),
            "dockerd": lambda: docker(dd, "exec", "bx", "true")}, a.n))
        joins = ("--pid", "container:bx", "--ipc", "container:bx")
        _print("docker run --rm --pid/--ipc container:X busybox true", _interleaved({
            "hostbridge": lambda: docker(hb, *run, *joins, "busybox", "true"),
            "dockerd": lambda: docker(dd, *run, *joins, "busybox", "true")}, a.n))
        docker(hb, "rm", "-f", "bxu")
        _remapped(s, run, a.n)
        for url in (hb, dd):
            docker(url, "rm", "-f", "bx")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/isolation.py needs root (it runs dockerd and the engine)")
    main()
