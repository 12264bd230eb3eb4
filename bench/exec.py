"""`docker exec CONTAINER true` with the stock CLI: hostbridge's engine against dockerd.

Run as root from the repository root: ``python3 bench/exec.py [N]`` (default 30 runs each,
interleaved so that load on the machine hits both alike). Prints medians and the ratio
hostbridge / dockerd (the target is <= 0.5). Starts a private dockerd (see common.py).
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import SideBySide, describe  # noqa: E402
from common import docker_env as docker  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with SideBySide() as sb:
        for env in sb.envs.values():
            docker(env, "run", "-d", "--name", "bench-exec", "--network", "none", "busybox", "sleep", "100000")
            for _ in range(3):  # warm up
                docker(env, "exec", "bench-exec", "true")
        times = {name: [] for name in sb.envs}
        import time
        for _ in range(n):
            for name, env in sb.envs.items():
                t = time.perf_counter()
                docker(env, "exec", "bench-exec", "true")
                times[name].append(time.perf_counter() - t)
                time.sleep(0.1)  # what a user's pace leaves between two commands
        for name in times:
            print(describe(name, sorted(times[name])))
        ratio = statistics.median(times["hostbridge"]) / statistics.median(times["dockerd"])
        print("docker exec C true: hostbridge/dockerd = %.2fx (target <= 0.5x)" % ratio)


if __name__ == "__main__":
    main()
