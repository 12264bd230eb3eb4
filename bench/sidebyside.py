"""Two engines side by side for the benchmarks: hostbridge's (a temp root) and a private dockerd.

dockerd runs on its own socket, data root, exec root and pidfile under a temp dir, with no
bridge and no iptables, so it touches nothing of the host's docker; both get the same offline
busybox image. Containers run with ``--network none``. Use as a context manager.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support import busybox  # noqa: E402
from tests.support.engine import Engine  # noqa: E402


class SideBySide:
    """``envs``: {"hostbridge": env, "dockerd": env} for the stock docker CLI."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="hb-bench-", dir="/tmp")
        self.engine = None
        self.dockerd = None
        self.envs = {}

    def __enter__(self):
        tar = busybox.cached_rootfs_tar(os.path.join(self.tmp, "bb"))
        self.engine = Engine(os.path.join(self.tmp, "hb")).start()
        os.makedirs(os.path.join(self.tmp, "hb"), exist_ok=True)
        self.engine.import_tar(tar, "busybox:latest")
        base = dict(os.environ, DOCKER_CONFIG=os.path.join(self.tmp, "cfg"), DOCKER_CLI_HINTS="false")
        self.envs["hostbridge"] = dict(base, DOCKER_HOST=self.engine.url)
        d = os.path.join(self.tmp, "dd")
        os.makedirs(d)
        sock = os.path.join(d, "d.sock")
        self.dockerd = subprocess.Popen(
            ["dockerd", "--host", "unix://" + sock, "--data-root", os.path.join(d, "data"), "--exec-root",
             os.path.join(d, "exec"), "--pidfile", os.path.join(d, "d.pid"), "--bridge", "none",
             "--iptables=false", "--ip6tables=false"],
            stdout=open(os.path.join(d, "log"), "wb"), stderr=subprocess.STDOUT)
        self.envs["dockerd"] = dict(base, DOCKER_HOST="unix://" + sock)
        end = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.envs["dockerd"], capture_output=True).returncode:
            if time.monotonic() > end or self.dockerd.poll() is not None:
                raise RuntimeError("dockerd did not start; see %s/log" % d)
            time.sleep(0.3)
        docker(self.envs["dockerd"], "import", tar, "busybox:latest")
        return self

    def __exit__(self, *exc):
        for env in self.envs.values():
            ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f"] + ids, env=env, capture_output=True)
        if self.engine:
            self.engine.close()
        if self.dockerd and self.dockerd.poll() is None:
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(30)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
        subprocess.run(["umount", "-R", os.path.join(self.tmp, "dd", "exec")], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def docker(env, *args, stdout=subprocess.PIPE):
    """Run the docker CLI; raise with its stderr if it fails."""
    r = subprocess.run(["docker"] + list(args), env=env, stdout=stdout, stderr=subprocess.PIPE)
    if r.returncode:
        raise RuntimeError("docker %s: %s" % (" ".join(args), r.stderr.decode(errors="replace").strip()))
    return r


def timed(fn, n):
    """Run ``fn`` n times; returns the sorted durations in seconds."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return sorted(out)


def describe(name, xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return "%-10s median %7.1f ms (q1 %.1f, q3 %.1f, n=%d)" % (name, statistics.median(xs) * 1e3, q[0] * 1e3,
                                                             q[2] * 1e3, len(xs))
