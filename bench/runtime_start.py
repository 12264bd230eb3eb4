"""How long the runtime takes to run `true`: spawn (create) + start + wait, end to end.

Run as root from the repository root: ``python3 bench/runtime_start.py [N]``. Prints the
median and quartiles of N runs (default 20) and, for one run, each phase. When a local
dockerd answers (``docker info``) and has busybox, prints ``docker run --rm busybox true``
beside it for scale, and always a bare interpreter start-up, the floor on a busy host.
Needs /bin/busybox (busybox-static) for the rootfs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hostbridge.guest import util
from hostbridge.guest.runtime.client import ShimClient
from tests.support import busybox


def make_bundle(tmp: str, lower: str) -> ShimClient:
    cid = util.new_id()
    base = os.path.join(tmp, cid[:12])
    for d in ("upper", "work", "merged", "bundle"):
        os.makedirs(os.path.join(base, d))
    cfg = {"id": cid, "hostname": cid[:12], "domainname": "",
           "rootfs": {"driver": "overlay", "lower": [lower], "upper": base + "/upper",
                      "work": base + "/work", "merged": base + "/merged", "readonly": False},
           "process": {"args": ["true"], "env": [], "cwd": "/", "user": ""},
           "namespaces": {"net": "new", "pid": "new", "ipc": "new", "uts": "new"},
           "mounts": [], "cgroup": {"name": "bench-" + cid[:12]}, "sysctls": {},
           "log_path": base + "/bundle/log.json"}
    with open(os.path.join(base, "bundle", "config.json"), "w") as f:
        json.dump(cfg, f)
    return ShimClient(os.path.join(base, "bundle"))


def one(tmp: str, lower: str) -> tuple:
    c = make_bundle(tmp, lower)
    t0 = time.perf_counter()
    c.spawn()
    t1 = time.perf_counter()
    c.start()
    t2 = time.perf_counter()
    rec = c.wait(timeout=30)
    t3 = time.perf_counter()
    assert rec["exit_code"] == 0, rec
    return t1 - t0, t2 - t1, t3 - t2, t3 - t0


def docker_times(n: int):
    if not shutil.which("docker"):
        return None
    ok = subprocess.run(["docker", "image", "inspect", "busybox"], capture_output=True)
    if ok.returncode != 0:
        return None
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "busybox", "true"], capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tmp = tempfile.mkdtemp(prefix="hb-bench-")
    try:
        lower = os.path.join(tmp, "lower")
        os.makedirs(lower)
        with tarfile.open(busybox.write_rootfs_tar(os.path.join(tmp, "rootfs.tar"))) as tar:
            tar.extractall(lower)
        one(tmp, lower)  # warm caches
        runs = [one(tmp, lower) for _ in range(n)]
        totals = sorted(r[3] for r in runs)
        q = statistics.quantiles(totals, n=4)
        print("runtime spawn+start+wait of `true`, %d runs: median %.1f ms (q1 %.1f, q3 %.1f)"
              % (n, statistics.median(totals) * 1e3, q[0] * 1e3, q[2] * 1e3))
        for name, i in (("spawn", 0), ("start", 1), ("wait", 2)):
            print("  %-5s median %.1f ms" % (name, statistics.median(r[i] for r in runs) * 1e3))
        base = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
            base.append(time.perf_counter() - t)
        print("  (bare `python3 -S -c pass` on this host now: median %.1f ms; load %s)"
              % (statistics.median(base) * 1e3, os.getloadavg()[0]))
        d = docker_times(min(n, 10))
        if d:
            print("docker run --rm busybox true: median %.1f ms (ratio %.2f)"
                  % (statistics.median(d) * 1e3, statistics.median(totals) / statistics.median(d)))
        else:
            print("(no local dockerd with busybox: no docker comparison)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
