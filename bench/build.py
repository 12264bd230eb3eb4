"""Dockerfile builds: hostbridge's engine vs dockerd's classic builder, both driven by the stock CLI.

    python3 bench/build.py [--runs 3] [--files 2000]

A 6-step Dockerfile (FROM busybox, COPY of a 2,000-file tree, RUN steps) is built with
``DOCKER_BUILDKIT=0 docker build`` against a hostbridge engine and a private dockerd (its own
socket, data and exec roots, no bridge, no iptables), each holding the same busybox image:

- uncached: ``--no-cache``, every step runs (target <= 1.0x dockerd); the context's files are
  the ones the engine saw before, so hostbridge links them from its context file cache;
- uncached, new files: the same, with every file's mtime changed first (so no context file is
  known: what a first build of a tree costs);
- cached: a rebuild where every step comes from the cache (target <= 0.5x dockerd).

Medians of ``--runs`` runs (the machine is shared and noisy). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import SideBySide, docker, report, timed  # noqa: E402

DOCKERFILE = """\
FROM busybox
COPY files /files
RUN find /files -type f | wc -l > /count
RUN mkdir /out && cat /files/d02/f0042.txt /count > /out/summary
ENV STAGE=bench
RUN echo "$STAGE" > /out/stage && rm -r /files/d00
"""


def make_context(root, n_files):
    """A context dir with the Dockerfile and ``n_files`` small files in 20 directories."""
    for i in range(n_files):
        d = os.path.join(root, "files", "d%02d" % (i % 20))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%04d.txt" % i), "w") as f:
            f.write("file %d of the bench context\n" % i * (1 + i % 7))
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    return root


def touch_all(root):
    """Give every context file a new mtime (new to any cache keyed by metadata)."""
    stamp = time.time()
    for dirpath, _, filenames in os.walk(os.path.join(root, "files")):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))


def build(url, ctx, *opts):
    r = docker(url, "build", "-q", *opts, ctx, env=dict(os.environ, DOCKER_BUILDKIT="0"), timeout=600)
    if r.returncode != 0:
        raise SystemExit("build against %s failed:\n%s%s" % (url, r.stdout, r.stderr))
    return r.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hb-bench-build-")
    try:
        ctx = make_context(work, args.files)
        with SideBySide() as sb:
            urls = {"hostbridge": sb.hb.url, "dockerd": sb.dd.url}
            times = {(name, kind): [] for name in urls for kind in ("uncached", "new-files", "cached")}
            for url in urls.values():
                build(url, ctx)  # warm: the base image's layers in the page cache, the CLI too
            # the two engines take turns, run by run, so that both meet the same load
            for _ in range(args.runs):
                for name, url in urls.items():
                    times[name, "uncached"].append(timed(lambda: build(url, ctx, "--no-cache"), 1)[0])
                for name, url in urls.items():
                    touch_all(ctx)
                    times[name, "new-files"].append(timed(lambda: build(url, ctx, "--no-cache"), 1)[0])
                for name, url in urls.items():
                    build(url, ctx)  # the touched files: the COPY step misses once
                    times[name, "cached"].append(timed(lambda: build(url, ctx), 1)[0])
            for key, ts in sorted(times.items()):
                print("%-10s %-9s %s" % (key + (" ".join("%.2f" % t for t in ts),)))
            med = {key: statistics.median(ts) for key, ts in times.items()}
            report("build, 6 steps, %d files, uncached" % args.files, med["hostbridge", "uncached"],
                   med["dockerd", "uncached"], 1.0)
            report("build, uncached, every file new", med["hostbridge", "new-files"],
                   med["dockerd", "new-files"], 1.0)
            report("rebuild, every step cached", med["hostbridge", "cached"], med["dockerd", "cached"], 0.5)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
