"""Disk and memory handed back by a qemu machine, measured on the host.

    python3 bench/vm_reclaim.py [--containers 20] [--image-mib 300] [--variants today,new,order-N] [--no-disk]

Boots one throw-away machine per variant (temp HOSTBRIDGE_HOME, the shared image cache), one
after the other, and prints:

- memory, per variant: QEMU's RSS idle, with ``--containers`` busybox containers running, and
  after they are removed and the guest was left alone ``--settle`` s; each split into the guest's
  RAM and the rest (mostly TCG's translated-code buffer), with the time `up` and the
  containers' starts took (what a smaller code buffer may cost). ``today`` is the behaviour
  before issue 16's memory work (QEMU's default 1 GiB TCG buffer, free page reporting from
  2 MiB blocks, no idle cache drop), ``new`` the current one (qemu_cmd.TCG_TB_SIZE_MIB, the
  guest init's REPORTING_ORDER and IDLE_RECLAIM: caches dropped and memory compacted once idle),
  ``order-N`` the current one reporting free blocks of 2^N pages, ``thp`` the current one with
  QEMU's guest RAM in transparent huge pages, as before session 10 (under TCG QEMU now starts
  with ``PR_SET_THP_DISABLE``, ``qemu._small_pages``; with huge pages the host faults in and
  khugepaged collapses whole 2 MiB at a time); and what the guest's idle reclaim did (its console);
- disk (on the last variant, unless --no-disk): the qcow2 file's allocated size on the host
  (st_blocks, not its apparent size) and the guest's own view (ext4 used on the data disk,
  `docker system df`), after images of ``--image-mib`` were committed, then after `docker
  system prune -a` with and without the guest trimming (`fstrim`, what `down` and the guest's
  periodic trim do): target within 10% of the guest's used space.

Destroys the machines at the end. Not a test: nothing is asserted. Needs QEMU and the stock docker
CLI; images come from the offline busybox rootfs (no registry).

Measured once here (TCG, 2 vCPUs, 1 GiB guest, host load 7-9, 50 s settle): today idle 607 MiB,
20 containers 842 MiB, removed 853 MiB (no fall: TCG's buffer grows on); new idle 434 MiB,
20 containers 547 MiB, removed 520 MiB (a 27 MiB fall, 333 MiB below today's). Disk: the qcow2 went 32 MiB (new) → 1173 MiB with
300 MiB of images → 1236 MiB after the prune without a trim → 30 MiB after fstrim (the guest's
ext4 says 7 MiB used; the rest is qcow2 and ext4 metadata, below the new disk's own 32 MiB).
With the idle compaction (host load 2-5, 20 s settle, 90 s after): today 523 / 725 / 750 MiB
(guest RAM 232 / 286 / 308); new 483 / 569 / 529 MiB (guest RAM 227 / 306 / 268: a 38 MiB fall,
60 MiB had lain in blocks below 128 KiB); order-0 (no compaction) guest RAM 209 / 290 / 258;
no-thp guest RAM 220 / 281 / 245 (that variant is `new` since session 10; `thp` is the old `new`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import rss_kib  # noqa: E402
from tests.support import busybox  # noqa: E402
from tests.support.hbhome import qemu_guest_ram_mib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
NAME = "reclaim"
# The CLI with other memory settings: for the "today" variant as it was before issue 16's memory
# work (QEMU's default TCG code buffer, and a guest told to report only 2 MiB blocks and never
# drop its caches nor compact), for "order-N" the new behaviour reporting blocks of 2^N pages.
PATCHED_CLI = r'''
import json, sys
from hostbridge.machines import qemu, qemu_cmd
patch = json.loads(sys.argv.pop(1))
if patch.get("tb_default"):
    qemu_cmd.TCG_TB_SIZE_MIB = 0
if patch.get("thp"):  # QEMU's guest RAM in transparent huge pages, as before qemu._small_pages
    import contextlib
    qemu._small_pages = lambda wanted: contextlib.nullcontext()
create = qemu.QemuDriver.create
def create_patched(self):
    create(self)
    if "memory" not in patch:
        return
    with open(self.files.guest_config) as f:
        cfg = json.load(f)
    cfg["memory"] = patch["memory"]
    with open(self.files.guest_config, "w") as f:
        json.dump(cfg, f)
qemu.QemuDriver.create = create_patched
from hostbridge.cli import main
sys.argv[0] = "hostbridge"
main()
'''
TODAY = {"tb_default": True, "thp": True, "memory": {"reporting_order": 9, "idle_reclaim": 0}}


def variant_patch(variant):
    """The PATCHED_CLI settings of ``variant`` (None: the CLI as it is)."""
    if variant == "today":
        return TODAY
    if variant.startswith("order-"):
        return {"memory": {"reporting_order": int(variant[len("order-"):])}}
    if variant == "thp":
        return {"thp": True}
    return None


def hb(env, *args, timeout=1800, patch=None):
    cli = ["-c", PATCHED_CLI, json.dumps(patch)] if patch else ["-m", "hostbridge.cli"]
    r = subprocess.run([sys.executable] + cli + list(args), capture_output=True, text=True, env=env,
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


def memory(env, name, args, patch):
    """Boot machine ``name`` (the CLI ``patch``ed, ``variant_patch``); print QEMU's RSS idle, with the
    containers running, after they are removed. Returns the machine's dir."""
    t0 = time.monotonic()
    hb(env, "up", "--machine", name, "--driver", "qemu", "--cpus", "2", "--memory", args.memory, "--disk", "8G",
       patch=patch)
    up = time.monotonic() - t0
    env = dict(env, DOCKER_HOST=docker_host(env, name))
    with open(os.path.join(env["HOSTBRIDGE_HOME"], "state", "machines", name, "qemu.pid")) as f:
        pid = int(f.read())
    docker(env, "import", busybox.cached_rootfs_tar(os.path.join(env["HOSTBRIDGE_HOME"], "bb")), "busybox:latest")

    def rss(label, settle):
        time.sleep(settle)
        total, ram = rss_mib(pid), qemu_guest_ram_mib(pid, int(args.memory))
        print("  %-28s QEMU RSS %4.0f MiB (guest RAM %4.0f, the rest %4.0f)" % (label, total, ram, total - ram))
        rams.append(ram)
        return total

    rams = []
    print("%s (up %.1f s):" % (name, up))
    idle = rss("idle", args.settle)
    t0 = time.monotonic()
    ids = [docker(env, "run", "-d", "busybox", "sleep", "100000").strip() for _ in range(args.containers)]
    started = time.monotonic() - t0
    running = rss("%d containers running" % args.containers, args.settle)
    docker(env, "rm", "-f", *ids)
    removed = rss("removed, %.0f s later" % args.after, args.after)
    print("  fall after the containers stopped: %.0f MiB (%.0f%% of the running RSS; guest RAM %.0f MiB); above "
          "idle: %+.0f MiB; %d containers started in %.1f s" % (running - removed, 100 * (running - removed) / running,
                                                               rams[1] - rams[2], removed - idle, args.containers,
                                                               started))
    with open(os.path.join(env["HOSTBRIDGE_HOME"], "state", "machines", name, "serial.log"), errors="replace") as f:
        did = [line.strip() for line in f if "idle for" in line]
    print("  what the guest did: %s" % ("; ".join(did) or "no idle reclaim"))
    return {"up": up, "idle": idle, "running": running, "removed": removed, "started": started}


def docker_host(env, name):
    script = hb(env, "env", "--shell", "bash", name)
    return subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                          capture_output=True, text=True, check=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--image-mib", type=int, default=300)
    ap.add_argument("--memory", default="1024")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds left alone before the idle and running looks")
    ap.add_argument("--after", type=float, default=90.0,
                    help="seconds left alone after the containers are removed (the guest drops its caches after "
                         "30 s idle; free page reporting then takes up to ~30 s to report them all)")
    ap.add_argument("--variants", default="today,new",
                    help="today, new, order-N (new, reporting 2^N pages), thp (new, QEMU's guest RAM in transparent "
                         "huge pages as before)")
    ap.add_argument("--no-disk", action="store_true", help="skip the disk figures")
    args = ap.parse_args()

    from hostbridge.machines import image

    os.environ.pop("HOSTBRIDGE_HOME", None)
    home = tempfile.mkdtemp(prefix="hb-reclaim-")
    env = dict(os.environ, HOSTBRIDGE_HOME=home, PYTHONPATH=REPO, HOSTBRIDGE_IMAGE_CACHE=image.default_cache_dir())
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "DOCKER_HOST"):
        env.pop(k, None)
    names = ["%s-%s-%d" % (NAME, v, os.getpid()) for v in args.variants.split(",")]
    figures = {}
    try:
        for variant, name in zip(args.variants.split(","), names):
            figures[variant] = memory(env, name, args, variant_patch(variant))
            if name != names[-1]:
                hb(env, "destroy", "-f", "--machine", name, timeout=300)
        if "today" in figures and "new" in figures:
            t, n = figures["today"], figures["new"]
            print("side by side (new ÷ today): RSS running %.2f, after the stop %.2f (%.0f vs %.0f MiB); "
                  "up %.2f; containers' starts %.2f" % (n["running"] / t["running"], n["removed"] / t["removed"],
                                                        n["removed"], t["removed"], n["up"] / t["up"],
                                                        n["started"] / t["started"]))
        if not args.no_disk:
            disk_figures(env, names[-1], args.image_mib)
    finally:
        for name in names:
            if os.path.exists(os.path.join(home, "state", "machines", name, "machine.json")):
                subprocess.run([sys.executable, "-m", "hostbridge.cli", "destroy", "-f", "--machine", name], env=env,
                               cwd=REPO, capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", home])
    print("(TCG guest on a 2-core host shared with other jobs: times are inflated and noisy)")


def disk_figures(env, name, image_mib):
    env = dict(env, DOCKER_HOST=docker_host(env, name))
    disk = os.path.join(env["HOSTBRIDGE_HOME"], "state", "machines", name, "disk.qcow2")

    def guest_used():
        out = hb(env, "ssh", "--machine", name, "--", "sync; df -m /var/lib/hostbridge | tail -1")
        return float(out.split()[2])

    base = allocated_mib(disk)
    for i in range(3):
        docker(env, "run", "--name", "fill%d" % i, "busybox", "dd", "if=/dev/urandom", "of=/data",
               "bs=1M", "count=%d" % (image_mib // 3))
        docker(env, "commit", "fill%d" % i, "fill:%d" % i)
    full = allocated_mib(disk)
    print("qcow2 allocated: %.0f MiB at start, %.0f MiB with %d MiB of images (guest ext4 used %.0f MiB)"
          % (base, full, image_mib, guest_used()))
    docker(env, "system", "prune", "-a", "-f")
    time.sleep(2)
    pruned = allocated_mib(disk)
    df = docker(env, "system", "df")
    used = guest_used()
    print("after docker system prune -a, without a trim: qcow2 %.0f MiB; guest ext4 used %.0f MiB (%+.0f%%)"
          % (pruned, used, 100 * (pruned - used) / used))
    hb(env, "ssh", "--machine", name, "--", "fstrim -v /var/lib/hostbridge")
    time.sleep(2)
    trimmed = allocated_mib(disk)
    used = guest_used()
    print("after fstrim (periodic in the guest, and at down): qcow2 %.0f MiB; guest ext4 used %.0f MiB (%+.0f%%; "
          "target within 10%%)" % (trimmed, used, 100 * (trimmed - used) / used))
    print("docker system df:\n" + df)


if __name__ == "__main__":
    main()
