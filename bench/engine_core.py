"""Issue 2's figures, side by side with dockerd in one run:

1. the stock `docker run --rm busybox true` against hostbridge vs dockerd   (target <= 0.5x)
2. `hostbridge ps` vs `docker ps` against dockerd                           (target <= 3x)
3. engine idle RSS vs dockerd + containerd                                  (target <= 0.25x)
4. 100 containers started one after another: time per container by decile (must not grow)

Usage: sudo .venv/bin/python bench/engine_core.py [-n RUNS] [--containers 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import REPO, SideBySide, docker, report, rss_kib, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--idle-wait", type=int, default=135, help="seconds idle before the idle RSS (0: skip)")
    a = ap.parse_args()
    with SideBySide() as s:
        for url in (s.hb.url, s.dd.url):  # warm both
            docker(url, "run", "--rm", "--network", "none", "busybox", "true")
        hb, _ = timed(lambda: docker(s.hb.url, "run", "--rm", "--network", "none", "busybox", "true"), a.n)
        dd, _ = timed(lambda: docker(s.dd.url, "run", "--rm", "--network", "none", "busybox", "true"), a.n)
        report("docker run --rm busybox true", hb, dd, 0.5)

        for url in (s.hb.url, s.dd.url):
            docker(url, "run", "-d", "--network", "none", "--name", "idle", "busybox", "sleep", "1000")
        hbcli = os.path.join(REPO, ".venv", "bin", "hostbridge")
        argv = [hbcli] if os.path.exists(hbcli) else [sys.executable, "-m", "hostbridge.cli"]
        env = dict(os.environ, PYTHONPATH=REPO)
        # Bytecode as an installed package has it (this shell may set PYTHONDONTWRITEBYTECODE).
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "hostbridge")], check=True,
                       stdout=subprocess.DEVNULL)
        ours, _ = timed(lambda: subprocess.run(argv + ["--host", s.hb.url, "ps"], capture_output=True, env=env), a.n)
        theirs, _ = timed(lambda: docker(s.dd.url, "ps"), a.n)
        report("hostbridge ps vs docker ps (dockerd)", ours, theirs, 3.0)

        time.sleep(2)
        ours_rss = rss_kib(_engine_pids(s.hb.proc.pid))
        theirs_rss = rss_kib(s.dd.pids())
        report("RSS just after use (engine+zygote vs dockerd+containerd)", ours_rss / 1024, theirs_rss / 1024, 0.25,
               unit="MiB")
        if a.idle_wait:
            time.sleep(a.idle_wait)  # the engine lets its zygote go after 2 idle minutes
            ours_rss = rss_kib(_engine_pids(s.hb.proc.pid))
            theirs_rss = rss_kib(s.dd.pids())
            report("idle RSS after %ds (engine vs dockerd+containerd)" % a.idle_wait, ours_rss / 1024,
                   theirs_rss / 1024, 0.25, unit="MiB")

        for name, url in (("hostbridge", s.hb.url), ("dockerd", s.dd.url)):
            per = []
            for i in range(a.containers):
                t = time.perf_counter()
                r = docker(url, "run", "-d", "--network", "none", "--name", "many%d" % i, "busybox", "sleep", "1000")
                per.append(time.perf_counter() - t)
                if r.returncode != 0:
                    print("  %s: container %d failed: %s" % (name, i, r.stderr.strip()))
                    break
            dec = max(1, len(per) // 10)
            deciles = [sum(per[k:k + dec]) / len(per[k:k + dec]) for k in range(0, len(per), dec)]
            print("%-10s %d sequential starts, mean s per decile: %s" % (name, len(per), " ".join("%.3f" % d for d in deciles)))
            docker(url, "rm", "-f", *docker(url, "ps", "-aq").stdout.split(), timeout=600)


def _engine_pids(pid):
    """The engine and its zygote (the shims belong to containers, as containerd-shims do)."""
    out = subprocess.run(["pgrep", "-f", "hostbridge.guest zygote"], capture_output=True, text=True).stdout
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(p) for p in out.split() if p in kids]


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/engine_core.py needs root (it runs dockerd and the engine)")
    main()
