"""Disk and memory handed back by a qemu machine, measured on the host.

    python3 bench/vm_reclaim.py [--containers 20] [--image-mib 300]

Boots one throw-away machine (temp HOSTBRIDGE_HOME, the shared image cache) and prints:

- disk: the qcow2 file's allocated size on the host (st_blocks, not its apparent size) and the
  guest's own view (ext4 used on the data disk, `docker system df`), after images of
  ``--image-mib`` were committed, then after `docker system prune -a` with and without the guest
  trimming (`fstrim`, what `down` and the guest's periodic trim do): target within 10% of the
  guest's used space;
- memory: QEMU's RSS with ``--containers`` busybox containers running, after they are removed,
  and after the guest drops its caches (free page reporting hands freed pages back; the
  balloon device has it on).

Destroys the machine at the end. Not a test: nothing is asserted. Needs QEMU and the stock docker
CLI; images come from the offline busybox rootfs (no registry).

Measured once here (TCG, loaded host, 1 GiB guest): the qcow2 went 32 MiB (new) → 1173 MiB with
300 MiB of images → 1236 MiB after the prune without a trim → 30 MiB after fstrim (the guest's
ext4 says 7 MiB used; the rest is qcow2 and ext4 metadata, below the new disk's own 32 MiB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import rss_kib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
NAME = "reclaim"


def hb(env, *args, timeout=1800):
    r = subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=REPO)
    if r.returncode != 0:
        sys.exit("hostbridge %s failed: %s%s" % (" ".join(args[:4]), r.stdout, r.stderr.strip()))
    return r.stdout


def docker(env, *args, timeout=600):
    r = subprocess.run(["docker"] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        sys.exit("docker %s failed: %s" % (" ".join(args[:3]), r.stderr.strip()))
    return r.stdout


def allocated_mib(path):
    return os.stat(path).st_blocks * 512 / 2 ** 20


def rss_mib(pid):
    return rss_kib([pid]) / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--image-mib", type=int, default=300)
    ap.add_argument("--memory", default="1024")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds for free page reporting to act")
    args = ap.parse_args()

    from hostbridge.machines import image
    from tests.support import busybox

    os.environ.pop("HOSTBRIDGE_HOME", None)
    home = tempfile.mkdtemp(prefix="hb-reclaim-")
    env = dict(os.environ, HOSTBRIDGE_HOME=home, PYTHONPATH=REPO, HOSTBRIDGE_IMAGE_CACHE=image.default_cache_dir())
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "DOCKER_HOST"):
        env.pop(k, None)
    mdir = os.path.join(home, "state", "machines", NAME)
    disk = os.path.join(mdir, "disk.qcow2")
    try:
        hb(env, "up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", args.memory, "--disk", "8G",
           "--share", home)
        script = hb(env, "env", "--shell", "bash", NAME)
        env["DOCKER_HOST"] = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                                            capture_output=True, text=True, check=True).stdout
        with open(os.path.join(mdir, "qemu.pid")) as f:
            pid = int(f.read())
        docker(env, "import", busybox.cached_rootfs_tar(os.path.join(home, "bb")), "busybox:latest")

        def guest_used():
            out = hb(env, "ssh", "--machine", NAME, "--", "sync; df -m /var/lib/hostbridge | tail -1")
            return float(out.split()[2])

        # Memory: containers running, removed, then caches dropped.
        ids = [docker(env, "run", "-d", "busybox", "sleep", "100000").strip() for _ in range(args.containers)]
        time.sleep(args.settle)
        running = rss_mib(pid)
        docker(env, "rm", "-f", *ids)
        time.sleep(args.settle)
        removed = rss_mib(pid)
        hb(env, "ssh", "--machine", NAME, "--", "sync; echo 3 > /proc/sys/vm/drop_caches")
        time.sleep(args.settle)
        dropped = rss_mib(pid)
        print("QEMU RSS (%s MiB guest): %d containers running %.0f MiB; removed %.0f MiB; guest caches dropped "
              "%.0f MiB (fall %.0f MiB, %.0f%%)" % (args.memory, args.containers, running, removed, dropped,
                                                    running - dropped, 100 * (running - dropped) / running))

        # Disk: images made, pruned, trimmed.
        base = allocated_mib(disk)
        for i in range(3):
            docker(env, "run", "--name", "fill%d" % i, "busybox", "dd", "if=/dev/urandom", "of=/data",
                   "bs=1M", "count=%d" % (args.image_mib // 3))
            docker(env, "commit", "fill%d" % i, "fill:%d" % i)
        full = allocated_mib(disk)
        print("qcow2 allocated: %.0f MiB at start, %.0f MiB with %d MiB of images (guest ext4 used %.0f MiB)"
              % (base, full, args.image_mib, guest_used()))
        docker(env, "system", "prune", "-a", "-f")
        time.sleep(2)
        pruned = allocated_mib(disk)
        df = docker(env, "system", "df")
        used = guest_used()
        print("after docker system prune -a, without a trim: qcow2 %.0f MiB; guest ext4 used %.0f MiB (%+.0f%%)"
              % (pruned, used, 100 * (pruned - used) / used))
        hb(env, "ssh", "--machine", NAME, "--", "fstrim -v /var/lib/hostbridge")
        time.sleep(2)
        trimmed = allocated_mib(disk)
        used = guest_used()
        print("after fstrim (periodic in the guest, and at down): qcow2 %.0f MiB; guest ext4 used %.0f MiB (%+.0f%%; "
              "target within 10%%)" % (trimmed, used, 100 * (trimmed - used) / used))
        print("docker system df:\n" + df)
    finally:
        if os.path.exists(os.path.join(mdir, "machine.json")):
            subprocess.run([sys.executable, "-m", "hostbridge.cli", "destroy", "-f", "--machine", NAME], env=env,
                           cwd=REPO, capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", home])
    print("(TCG guest on a 2-core host shared with other jobs)")


if __name__ == "__main__":
    main()
