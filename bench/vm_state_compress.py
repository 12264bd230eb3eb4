"""What compressing a suspended VM's saved state would cost and save, beside the plain file.

    python3 bench/vm_state_compress.py STATE [--runs 3]

STATE is a saved state as `hostbridge down` writes it (``saved-state`` in the machine's dir;
copy it before the next `up`, which loads and removes it). For each compressor this host has
(zstd -1, lz4 -1, gzip -1 programs; Python's zlib level 1, what QEMU's own ``compress``
capability uses; QEMU 7.2's multifd zstd needs a socket, not the ``fd:`` a save goes to) it
prints the time to compress the state (what `down` would add, at best: QEMU's stream goes
through the compressor's pipe), the time to decompress it (what `up` would add), and the size,
beside the plain file written (fsync'd) and read back (from the host's page cache, as a resume
soon after a suspend reads it). Best of ``--runs``. Not a test: nothing is asserted.

Measured here (loaded 2-core host, a 1 GiB guest's 179 MiB state just after boot): zstd -1 →
50 MiB in 0.83 s, back in 0.30 s; lz4 -1 → 71 MiB in 1.24 s (0.39 s CPU), back in 0.26 s;
gzip -1 → 51 MiB in 5.4 s; plain read 0.03 s. suspend.py keeps the state uncompressed: every
compressor costs more than 0.2 s on the way down or up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import timed  # noqa: E402

PROGRAMS = {"zstd -1": (["zstd", "-1", "-q", "-c"], ["zstd", "-d", "-q", "-c"]),
            "lz4 -1": (["lz4", "-1", "-q", "-c"], ["lz4", "-d", "-q", "-c"]),
            "gzip -1": (["gzip", "-1", "-c"], ["gzip", "-d", "-c"])}


def best(fn, runs):
    """The fastest of ``runs`` calls to ``fn`` (s)."""
    return min(timed(fn, runs)[1])


def pipe(argv, src, dst):
    with open(src, "rb") as i, open(dst, "wb") as o:
        subprocess.run(argv, stdin=i, stdout=o, check=True)
        sync(o)


def copy(src, dst):
    with open(src, "rb") as i, open(dst, "wb") as o:
        shutil.copyfileobj(i, o, 1 << 20)
        sync(o)


def sync(f):
    f.flush()
    if f.name != os.devnull:
        os.fsync(f.fileno())


def zlib_file(src, dst, compress):
    obj = zlib.compressobj(1) if compress else zlib.decompressobj()
    with open(src, "rb") as i, open(dst, "wb") as o:
        for chunk in iter(lambda: i.read(1 << 20), b""):
            o.write(obj.compress(chunk) if compress else obj.decompress(chunk))
        o.write(obj.flush())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    mib = os.path.getsize(args.state) / 2 ** 20
    work = tempfile.mkdtemp(prefix="hb-statez-", dir=os.path.dirname(os.path.abspath(args.state)))
    try:
        plain = os.path.join(work, "plain")
        w = best(lambda: copy(args.state, plain), args.runs)
        r = best(lambda: copy(plain, os.devnull), args.runs)
        print("plain: %.0f MiB, written %.2f s, read %.2f s" % (mib, w, r))
        packed, back = os.path.join(work, "packed"), os.devnull
        for name, (comp, decomp) in PROGRAMS.items():
            if not shutil.which(comp[0]):
                print("%s: not installed here" % name)
                continue
            c = best(lambda: pipe(comp, args.state, packed), args.runs)
            d = best(lambda: pipe(decomp, packed, back), args.runs)
            size = os.path.getsize(packed) / 2 ** 20
            print("%-8s %4.0f MiB (%.1fx smaller), compress %.2f s (+%.2f on down), decompress %.2f s (+%.2f on up)"
                  % (name, size, mib / size, c, c - w, d, d - r))
        c = best(lambda: zlib_file(args.state, packed, True), args.runs)
        d = best(lambda: zlib_file(packed, back, False), 1)
        size = os.path.getsize(packed) / 2 ** 20
        print("%-8s %4.0f MiB (%.1fx smaller), compress %.2f s (+%.2f on down), decompress %.2f s (+%.2f on up)"
              % ("zlib 1", size, mib / size, c, c - w, d, d - r))
    finally:
        shutil.rmtree(work)
    print("(2-core host shared with other jobs: times are inflated)")


if __name__ == "__main__":
    main()
