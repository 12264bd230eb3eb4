"""Pull (and push) throughput of a generated multi-layer image from a local docker-registry.

    python3 bench/registry_pull.py [--size-mb 200] [--layers 5] [--parallel 3]

Starts Debian's docker-registry on 127.0.0.1 (random port, temp storage), generates LAYERS
layer tars adding up to SIZE-MB (half random bytes, half repetitive text, so gzip has work to
do as on real images), pushes them with hostbridge's registry client, then pulls them back into
a fresh directory store and prints the throughputs. Nothing leaves 127.0.0.1.

The side-by-side comparison with dockerd (`docker pull` of the same image from the same
registry) is the next step: see the TODO at the end of main().
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hostbridge.guest.registry import pull, push  # noqa: E402
from hostbridge.guest.registry.client import RegistryConfig  # noqa: E402
from tests.registry import regsupport  # noqa: E402

MB = 1000 * 1000


def make_layer(path, size, seed):
    """A layer tar of ``size`` bytes of file data: half random, half repeated text."""
    text = (b"hostbridge bench layer %d: the quick brown fox jumps over the lazy dog\n" % seed) * 20000
    files = {}
    half = size // 2
    files["data/random.bin"] = os.urandom(half)
    files["data/text.txt"] = (text * (size // len(text) + 1))[: size - half]
    return regsupport.small_layer_tar(path, files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hb-bench-registry-")
    reg = regsupport.RegistryServer(os.path.join(work, "registry"))
    os.makedirs(reg.workdir, exist_ok=True)
    cfg = RegistryConfig(timeout=60)
    try:
        reg.start()
        per = args.size_mb * MB // args.layers
        tars = [make_layer(os.path.join(work, "layer%d.tar" % i), per, i) for i in range(args.layers)]
        diff_ids = [regsupport.file_digest(t) for t in tars]
        config = regsupport.image_config(diff_ids)
        name = "%s/bench/big:1" % reg.domain
        raw_total = sum(os.path.getsize(t) for t in tars)

        t0 = time.perf_counter()
        res = push.push(name, config, tars, diff_ids=diff_ids, config=cfg, max_parallel=args.parallel)
        t_push = time.perf_counter() - t0

        store = regsupport.DirStore(os.path.join(work, "store"))
        t0 = time.perf_counter()
        got = pull.pull(name, store, os.path.join(work, "dl"), config=cfg, max_parallel=args.parallel)
        t_pull = time.perf_counter() - t0
        assert got.digest == res["Digest"]
        comp_total = sum(os.path.getsize(os.path.join(reg.storage, root, f))
                         for root, _, files in os.walk(reg.storage) for f in files if f == "data")

        print("image: %d layers, %.1f MB uncompressed, %.1f MB in the registry (gzip + manifests)"
              % (args.layers, raw_total / MB, comp_total / MB))
        print("hostbridge push: %.2f s  (%.1f MB/s uncompressed)" % (t_push, raw_total / MB / t_push))
        print("hostbridge pull: %.2f s  (%.1f MB/s uncompressed, download + verify + store)"
              % (t_pull, raw_total / MB / t_pull))
        # TODO(bench): run `docker pull`/`docker push` of the same image against the same
        # registry through Debian's dockerd (insecure-registries 127.0.0.1:PORT) and print the
        # ratio hostbridge/dockerd once the engine's image store lands (targets: >= 1.0x).
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
