"""Pull and push through the engine vs dockerd, same image, same local docker-registry, one run.

    sudo python3 bench/registry_pull.py [--size-mb 200] [--layers 5] [-n 3]

Starts Debian's docker-registry on 127.0.0.1 (random port, temp storage) and pushes a generated
image there (LAYERS layer tars adding up to SIZE-MB, half random bytes, half repetitive text,
so gzip has work to do as on real images). Then, side by side (bench/common.py: the hostbridge
engine and a private dockerd with ``--insecure-registry 127.0.0.1:PORT``):

- pull: the stock ``docker pull`` of that image against each engine, N times (image removed
  between runs, so every layer is downloaded, verified and extracted each time);
- push: the stock ``docker push`` of the pulled image to a fresh registry per run (so every
  layer is compressed and uploaded; no "Layer already exists", no cross-repository mount).

Prints medians and the ratio hostbridge/dockerd (target <= 1.0x). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from common import Dockerd, Engine, docker, report

from hostbridge.guest.registry import push
from hostbridge.guest.registry.client import RegistryConfig
from tests.registry import regsupport

MB = 1000 * 1000


def make_layer(path, size, seed):
    """A layer tar of ``size`` bytes of file data: half random, half repeated text."""
    text = (b"hostbridge bench layer %d: the quick brown fox jumps over the lazy dog\n" % seed) * 20000
    half = size // 2
    files = {"data%d/random.bin" % seed: os.urandom(half),
             "data%d/text.txt" % seed: (text * (size // len(text) + 1))[: size - half]}
    return regsupport.small_layer_tar(path, files)


def _ok(r, what):
    if r.returncode != 0:
        raise SystemExit("%s failed: %s" % (what, r.stderr.strip()))
    return r


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("-n", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hb-bench-registry-")
    reg = regsupport.RegistryServer(os.path.join(work, "registry"))
    hb = dd = None
    try:
        reg.start()
        os.makedirs(os.path.join(work, "hb"))
        os.makedirs(os.path.join(work, "dd"))
        hb = Engine(os.path.join(work, "hb")).start()
        dd = Dockerd(os.path.join(work, "dd")).start(["--insecure-registry", reg.domain])
        per = args.size_mb * MB // args.layers
        tars = [make_layer(os.path.join(work, "layer%d.tar" % i), per, i) for i in range(args.layers)]
        config = regsupport.image_config([regsupport.file_digest(t) for t in tars])
        name = "%s/bench/big:1" % reg.domain
        push.push(name, config, tars, config=RegistryConfig(timeout=60))
        for t in tars:
            os.unlink(t)
        print("image: %d layers, %.0f MB uncompressed, from %s" % (args.layers, args.size_mb, reg.domain))

        pulls = {"hostbridge": [], "dockerd": []}
        order = (("hostbridge", hb.url), ("dockerd", dd.url))
        for i in range(args.n + 1):  # round 0 warms the registry and the page cache: not counted
            for who, url in order if i % 2 else order[::-1]:
                t = time.perf_counter()
                _ok(docker(url, "pull", name, timeout=1800), "%s pull" % who)
                if i:
                    pulls[who].append(time.perf_counter() - t)
                _ok(docker(url, "rmi", name), "%s rmi" % who)
        report("docker pull (%d MB, %d layers)" % (args.size_mb, args.layers),
               _median(pulls["hostbridge"]), _median(pulls["dockerd"]), 1.0)

        for url in (hb.url, dd.url):
            _ok(docker(url, "pull", name, timeout=1800), "pull")
        pushes = {"hostbridge": [], "dockerd": []}
        for i in range(args.n):
            for who, url in order if i % 2 else order[::-1]:
                fresh = regsupport.RegistryServer(os.path.join(work, "push-%s-%d" % (who, i)))
                fresh.start()
                try:
                    target = "%s/bench/pushed:1" % fresh.domain
                    _ok(docker(url, "tag", name, target), "tag")
                    t = time.perf_counter()
                    _ok(docker(url, "push", target, timeout=1800), "%s push" % who)
                    pushes[who].append(time.perf_counter() - t)
                    _ok(docker(url, "rmi", target), "rmi")
                finally:
                    fresh.stop()
        report("docker push (%d MB, %d layers)" % (args.size_mb, args.layers),
               _median(pushes["hostbridge"]), _median(pushes["dockerd"]), 1.0)
    finally:
        reg.stop()
        if hb:
            hb.close()
        if dd:
            dd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/registry_pull.py needs root (it runs dockerd and the engine)")
    main()
