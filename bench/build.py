"""Dockerfile builds: hostbridge's engine vs dockerd's classic builder, both driven by the stock CLI.

    python3 bench/build.py [--runs 3] [--files 2000]

A 6-step Dockerfile (FROM busybox, COPY of a 2,000-file tree, RUN steps) is built with
``DOCKER_BUILDKIT=0 docker build`` against a hostbridge engine and a private dockerd (its own
socket, data and exec roots, no bridge, no iptables), each holding the same busybox image:

- uncached: ``--no-cache``, every step runs (target <= 1.0x dockerd);
- cached: a rebuild where every step comes from the cache (target <= 0.5x dockerd).

Medians of ``--runs`` runs (the machine is shared and noisy). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

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
            results = {}
            for name, url in (("hostbridge", sb.hb.url), ("dockerd", sb.dd.url)):
                build(url, ctx)  # warm: the base image's layers in the page cache, the CLI too
                uncached, u_all = timed(lambda: build(url, ctx, "--no-cache"), args.runs)
                cached, c_all = timed(lambda: build(url, ctx), args.runs)
                results[name] = (uncached, cached)
                print("%-10s uncached %s  cached %s" % (name, " ".join("%.2f" % t for t in u_all),
                                                        " ".join("%.2f" % t for t in c_all)))
            ours, theirs = results["hostbridge"], results["dockerd"]
            report("build, 6 steps, %d files, uncached" % args.files, ours[0], theirs[0], 1.0)
            report("rebuild, every step cached", ours[1], theirs[1], 0.5)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
