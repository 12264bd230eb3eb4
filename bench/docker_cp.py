"""docker cp in and out (also out of a stopped container's volume), and docker commit, of a
2000-file tree: hostbridge's engine against dockerd.

Run as root from the repository root: ``python3 bench/docker_cp.py [FILES] [RUNS]`` (default 2000
files of 1 KB in 20 directories, 5 runs each, interleaved). Every operation goes by descriptors
in our engine (race-free: see docs/internals.md, "File operations in a container's tree");
this shows what that costs beside dockerd. Prints medians and ratios (target <= 1.0x).
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import SideBySide, describe, report  # noqa: E402
from common import docker_env as docker  # noqa: E402


def tree_tar(files: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for d in range(20):
            ti = tarfile.TarInfo("tree/d%d" % d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for i in range(files):
            ti = tarfile.TarInfo("tree/d%d/f%d" % (i % 20, i))
            ti.size, ti.mode = 1024, 0o644
            t.addfile(ti, io.BytesIO(b"x" * 1024))
    return buf.getvalue()


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    data = tree_tar(files)
    with SideBySide() as sb:
        for env in sb.envs.values():
            docker(env, "run", "-d", "--name", "bench-cp", "--network", "none", "busybox", "sleep", "3600")
            # a stopped container with the tree in a volume: cp must bind the volume into its view
            docker(env, "run", "-d", "--name", "bench-cpv", "-v", "bench-cpv:/vol", "--network", "none", "busybox",
                   "sleep", "3600")
            subprocess.run(["docker", "cp", "-", "bench-cpv:/vol"], input=data, env=env, capture_output=True,
                           check=True)
            docker(env, "stop", "-t", "0", "bench-cpv")
        ops = {
            "cp in": lambda env: subprocess.run(["docker", "cp", "-", "bench-cp:/"], input=data, env=env,
                                                capture_output=True, check=True),
            "cp out": lambda env: docker(env, "cp", "bench-cp:/tree", "-", stdout=subprocess.DEVNULL),
            "commit": lambda env: docker(env, "commit", "bench-cp", "bench-cp-img"),
            "cp out of a stopped container's volume":
                lambda env: docker(env, "cp", "bench-cpv:/vol/tree", "-", stdout=subprocess.DEVNULL),
        }
        for op, fn in ops.items():
            times = {name: [] for name in sb.envs}
            for _ in range(runs):
                for name, env in sb.envs.items():
                    t = time.perf_counter()
                    fn(env)
                    times[name].append(time.perf_counter() - t)
            for name, xs in times.items():
                print("%-7s %s" % (op, describe(name, sorted(xs))))
            report("docker %s of %d files" % (op, files), statistics.median(times["hostbridge"]),
                   statistics.median(times["dockerd"]), 1.0)


if __name__ == "__main__":
    main()
