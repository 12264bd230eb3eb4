"""`docker logs` of a container that printed 100 MB: hostbridge's engine against dockerd.

Run as root from the repository root: ``python3 bench/logs.py [MB] [RUNS]`` (default 100 MB,
5 runs each, interleaved). The container prints 100-byte lines (a finite pipeline: no reliance on SIGPIPE); the CLI's output goes to
/dev/null. Prints medians, MB/s, and the throughput ratio hostbridge / dockerd (target >= 1.0).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import SideBySide, describe  # noqa: E402
from common import docker_env as docker  # noqa: E402



def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = mb * 1000 * 1000
    with SideBySide() as sb:
        for env in sb.envs.values():
            docker(env, "run", "-d", "--name", "bench-logs", "--network", "none", "busybox", "sh", "-c",
                   "head -c %d /dev/zero | tr '\\0' x | fold -w 99; echo" % (size // 100 * 99))
            docker(env, "wait", "bench-logs")
            got = subprocess.run("docker logs bench-logs | wc -c", shell=True, env=env, capture_output=True, text=True)
            assert int(got.stdout) == size, "%s: logs gave %s bytes, not %d" % (env["DOCKER_HOST"], got.stdout, size)
        times = {name: [] for name in sb.envs}
        for _ in range(runs):
            for name, env in sb.envs.items():
                t = time.perf_counter()
                docker(env, "logs", "bench-logs", stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t)
        for name, xs in times.items():
            print(describe(name, sorted(xs)) + "  %.0f MB/s" % (mb / statistics.median(xs)))
        ratio = statistics.median(times["dockerd"]) / statistics.median(times["hostbridge"])
        print("docker logs of %d MB: hostbridge throughput / dockerd's = %.2fx (target >= 1.0x)" % (mb, ratio))


if __name__ == "__main__":
    main()
