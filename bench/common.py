"""Shared bench plumbing: a private dockerd (Debian's docker.io) and a hostbridge engine, side by
side on this machine, each on its own socket, data dir and (for dockerd) no bridge/iptables.

Benchmarks print figures and ratios; they assert nothing (timings do not belong in tests).
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support.busybox import write_rootfs_tar  # noqa: E402
from tests.support.engine import Engine  # noqa: E402


class Dockerd:
    """Debian's dockerd on private paths (no bridge, no iptables: it must not touch the host)."""

    def __init__(self, base):
        self.base = base
        self.sock = os.path.join(base, "d.sock")
        self.url = "unix://" + self.sock
        self.proc = None

    def start(self, extra=()):
        if not shutil.which("dockerd"):
            raise SystemExit("dockerd is missing: apt-get install docker.io (scripts/install-deps.sh --test)")
        log = open(os.path.join(self.base, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--host", self.url, "--data-root", os.path.join(self.base, "data"),
             "--exec-root", os.path.join(self.base, "exec"), "--pidfile", os.path.join(self.base, "d.pid"),
             "--bridge", "none", "--iptables=false", "--ip6tables=false"] + list(extra),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if docker(self.url, "version").returncode == 0:
                return self
            time.sleep(0.2)
        raise SystemExit("dockerd did not start; see %s/dockerd.log" % self.base)

    def pids(self):
        """dockerd and its children (containerd, shims)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [self.proc.pid] + [int(x) for x in out.split()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            docker(self.url, "rm", "-f", *docker(self.url, "ps", "-aq").stdout.split())
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["umount", "-R", os.path.join(self.base, "exec")], capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(self.base, "data")], capture_output=True)


def docker(url, *args, env=None, timeout=120):
    e = dict(os.environ if env is None else env, DOCKER_HOST=url, DOCKER_CLI_HINTS="false")
    return subprocess.run(["docker"] + list(args), env=e, capture_output=True, text=True, timeout=timeout)


def docker_env(env, *args, stdout=subprocess.PIPE):
    """Run the docker CLI with ``env``; raise with its stderr if it fails."""
    r = subprocess.run(["docker"] + list(args), env=env, stdout=stdout, stderr=subprocess.PIPE)
    if r.returncode:
        raise RuntimeError("docker %s: %s" % (" ".join(args), r.stderr.decode(errors="replace").strip()))
    return r


def describe(name, xs):
    """One line: median and quartiles of durations ``xs`` (seconds) in ms."""
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return "%-10s median %7.1f ms (q1 %.1f, q3 %.1f, n=%d)" % (name, statistics.median(xs) * 1e3, q[0] * 1e3,
                                                             q[2] * 1e3, len(xs))


def timed(fn, n):
    """Median and all timings (s) of ``n`` calls to ``fn``."""
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class SideBySide:
    """Context manager: a hostbridge engine and a dockerd, both with busybox:latest."""

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="hb-bench-")
        tar = write_rootfs_tar(os.path.join(self.tmp, "busybox.tar"))
        os.makedirs(os.path.join(self.tmp, "hb"))
        os.makedirs(os.path.join(self.tmp, "dd"))
        self.hb = Engine(os.path.join(self.tmp, "hb")).start()
        self.hb.import_tar(tar)
        self.dd = Dockerd(os.path.join(self.tmp, "dd")).start()
        r = docker(self.dd.url, "import", tar, "busybox:latest")
        if r.returncode != 0:
            raise SystemExit("dockerd import failed: " + r.stderr)
        base = dict(os.environ, DOCKER_CONFIG=os.path.join(self.tmp, "cfg"), DOCKER_CLI_HINTS="false")
        self.envs = {"hostbridge": dict(base, DOCKER_HOST=self.hb.url), "dockerd": dict(base, DOCKER_HOST=self.dd.url)}
        return self

    def __exit__(self, *exc):
        self.hb.close()
        self.dd.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def report(name, ours, theirs, target, lower_is_better=True, unit="s"):
    ratio = ours / theirs if theirs else float("inf")
    ok = ratio <= target if lower_is_better else ratio >= target
    print("%-44s hostbridge %8.4f%s  dockerd %8.4f%s  ratio %5.2fx  (target %s %.2fx: %s)"
          % (name, ours, unit, theirs, unit, ratio, "<=" if lower_is_better else ">=", target,
             "met" if ok else "NOT met"))
    return ratio
