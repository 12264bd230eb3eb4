"""`hostbridge up` timings for a qemu machine, the guest image's size and the idle VM's memory.

    python3 bench/vm_up.py [--runs 20] [--cpus 1] [--memory 1024]

Boots one throw-away machine (temp HOSTBRIDGE_HOME, the shared image cache; the engine's
drive built in the temp home's cache before the cold up) and prints:
with --empty-cache, the first `up` on an empty image and package cache (download + assembly
+ boot) and the download's size; cold `up` of a new machine with the image cached (create +
boot, the engine installed from the boot's drive and started + tunnel to /_ping; stages
`engine` and `tunnel` overlap: `tunnel` is what is left of the agent's login), `up` on the running machine (the fast path: agent + /_ping
only; target <= 0.5 s), `down` (suspend) and `up` from suspended (resume) with the saved state's
size — beside the resume as before the agent started with QEMU's load (BEFORE_CLI) and the same round over SSH (the guest's command channel switched off in driver.json, as
a VM of an older hostbridge has it), side by side —, then `down --shutdown` and `up` from stopped
(a boot), each with its stages; the image's size
(kernel + initramfs); QEMU's RSS and the guest's own `free` after the VM idles. Destroys the
machine at the end. Not a test: nothing is asserted. Needs QEMU (no root).

Each boot's own timeline (guest clock, from the serial console) follows its figure.

Today's disk-image guest measured here, for the side by side: cold up 14.5 s, down 10.5 s,
up from stopped 12.5 s, up when running 0.13 s. Suspend, one run on a loaded 2-core host (load
average 5-7, other helpers' QEMUs): down (suspend) 5.0-6.1 s beside down --shutdown 16.8 s; up
from suspended 7.5-12.1 s beside a boot 49.8 s; saved state 168 MiB for 1024 MiB of guest RAM.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import rss_kib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
NAME = "bench"
# `up` from suspended as it was before the tunnel agent was started with QEMU's load: the agent
# spawned once the VM ran, and the CLI's look at /info for the engine's start notes.
BEFORE_CLI = r'''
import sys
from hostbridge.cli import machine as cli_machine
from hostbridge.machines import machine
machine._Up._tunnel_while_resuming = lambda self, info: None
write_context = cli_machine._write_context
def write_context_after_notes(app, name, endpoint):
    cli_machine._engine_notes(app, endpoint)
    write_context(app, name, endpoint)
cli_machine._write_context = write_context_after_notes
from hostbridge.cli import main
sys.argv[0] = "hostbridge"
main()
'''


PYTHON = [sys.executable]  # --python: the interpreter that runs the CLI


def hb(env, *args, timeout=900, before=False):
    t0 = time.perf_counter()
    cli = ["-c", BEFORE_CLI] if before else ["-m", "hostbridge.cli"]
    r = subprocess.run(PYTHON + cli + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=REPO)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("hostbridge %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return elapsed, r.stdout


def commands(mdir, on):
    """Switch the machine's guest command channel on or off in its driver record (off: `up` and
    `down` take the SSH path a VM of an older hostbridge gets)."""
    import json

    path = os.path.join(mdir, "driver.json")
    with open(path) as f:
        record = json.load(f)
    record["commands"] = 1 if on else 0
    with open(path, "w") as f:
        json.dump(record, f)


def stages(stdout):
    m = re.search(r"^Stages: (.*)$", stdout, re.M)
    return m.group(1) if m else ""


# The guest's own boot timeline, from its serial console: the initramfs' /init and the guest
# init stamp their lines with the time since the kernel started (CLOCK_MONOTONIC).
TIMELINE = (("/init", r"hostbridge /init \[\s*([\d.]+)\] started"),
            ("python", r"python up at ([\d.]+)"),
            ("imports", r"imports done at ([\d.]+)"),
            ("sshd", r"hostbridge-init \[\s*([\d.]+)\] sshd started"),
            ("modules", r"hostbridge-init \[\s*([\d.]+)\] modules loaded"),
            ("disk", r"hostbridge-init \[\s*([\d.]+)\] mounted the data disk"),
            ("boot done", r"hostbridge-init \[\s*([\d.]+)\] boot done"),
            ("shutdown", r"hostbridge-init \[\s*([\d.]+)\] shutting down"),
            ("disk clean", r"hostbridge-init \[\s*([\d.]+)\] data disk (?:read-only|unmounted)"))


def guest_timeline(serial_log, steps=("/init", "python", "imports", "sshd", "modules", "disk", "boot done")):
    """``"/init 4.70 s, python 5.10 s, …"``: when each of ``steps`` was reached, guest clock."""
    try:
        with open(serial_log, errors="replace") as f:
            text = f.read()
    except OSError:
        return "no serial log"
    found = []
    for name, pattern in TIMELINE:
        m = re.search(pattern, text) if name in steps else None
        if m:
            found.append("%s %.2f s" % (name, float(m.group(1))))
    return ", ".join(found) or "no timeline in the serial log"


def rss_mib(pid):
    return rss_kib([pid]) / 1024.0


def image_report(img):
    """What the image and the initramfs QEMU boots weigh (its dir may be the run's own, gone at the end)."""
    from hostbridge.machines import image

    sizes = {n: os.path.getsize(os.path.join(img.dir, n)) / 2 ** 20 for n in ("kernel", "initrd.img")}
    text = ("guest image %s: kernel %.1f MiB + initramfs %.1f MiB = %.1f MiB (target <= 50 MB); system %.0f MiB "
            "unpacked in RAM" % (os.path.basename(img.dir), sizes["kernel"], sizes["initrd.img"], sum(sizes.values()),
                                 img.manifest.get("rootfs_bytes", 0) / 2 ** 20))
    boot_copy = image.boot_initrd(img)
    if boot_copy != img.initrd:
        text += ("\nQEMU boots the initramfs unpacked (%s%s): %.1f MiB, beside the image in the cache (kernel + "
                 "both: %.1f MiB)" % (os.path.basename(boot_copy), ", with the image's compiled modules"
                                       if image.has_seed(img.dir) else "", os.path.getsize(boot_copy) / 2 ** 20,
                                       sum(sizes.values()) + os.path.getsize(boot_copy) / 2 ** 20))
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--cpus", default="1")
    ap.add_argument("--memory", default="1024")
    ap.add_argument("--suspend-runs", type=int, default=3, help="down (suspend) + up (resume) rounds")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds the VM idles before its memory is read")
    ap.add_argument("--empty-cache", action="store_true",
                    help="first time an empty image and package cache (downloads ~100 MB from the Debian mirror)")
    ap.add_argument("--python", help="run the CLI with this Python (one with hostbridge's dependencies, e.g. a venv's), "
                    "as on a host whose Python is not the guest's (macOS, Windows): the image is then built by that "
                    "Python in a cache of the run's own, and its first machine (which keeps the image's compiled "
                    "modules) is timed apart")
    args = ap.parse_args()
    if args.python:
        PYTHON[:] = [args.python]

    from hostbridge.machines import image

    os.environ.pop("HOSTBRIDGE_HOME", None)
    home = tempfile.mkdtemp(prefix="hb-bench-")
    env = dict(os.environ, HOSTBRIDGE_HOME=home, PYTHONPATH=REPO)
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "HOSTBRIDGE_IMAGE_CACHE"):
        env.pop(k, None)
    mdir = os.path.join(home, "state", "machines", NAME)
    up = ["-v", "up", "--machine", NAME, "--driver", "qemu", "--cpus", args.cpus, "--memory", args.memory,
          "--disk", "8G", "--share", home]
    try:
        if args.empty_cache:
            first, out = hb(env, *up)
            debs = os.path.join(home, "cache", "debian", "debs")
            got = sum(os.path.getsize(os.path.join(debs, n)) for n in os.listdir(debs)) / 2 ** 20
            print("first up on an empty cache (download + assembly + boot): %.1f s  [%s]; downloaded %.0f MiB"
                  % (first, stages(out), got))
            hb(env, "destroy", "-f", "--machine", NAME)
            cache = os.path.join(home, "cache", "images")
        elif args.python:
            # Assembled offline, from the very packages this host's cached image was made of.
            made = image.build(image.default_cache_dir()).manifest
            from hostbridge.machines.debian import archive

            debs = os.path.join(home, "debs")
            os.makedirs(debs)
            wanted = dict(made["packages"], **{"linux-image-" + made["kernel_release"]: made["kernel_package"]})
            for package, stored in wanted.items():  # local_debs reads the package's name before its "_"
                os.link(os.path.join(archive.default_cache_dir(), "debs", stored),
                        os.path.join(debs, "%s_%s" % (package, stored)))
            env[image.DEBS_ENV] = debs
            cache = os.path.join(home, "cache", "images")
            env["HOSTBRIDGE_IMAGE_CACHE"] = cache
            first, out = hb(env, *up)
            print("first up of an image built by %s (assembly from cached packages + boot; the image's compiled "
                  "modules kept): %.1f s  [%s]" % (args.python, first, stages(out)))
            hb(env, "destroy", "-f", "--machine", NAME)
        else:
            cache = image.default_cache_dir()
        img = image.build(cache) if not args.python else image.cached(cache_dir=cache)
        env["HOSTBRIDGE_IMAGE_CACHE"] = cache
        if not args.python:  # (there, the first up made it)
            # The engine's drive is built once per hostbridge version, in the cache of the run's
            # own home: as warm as the image for the cold up.
            os.environ["HOSTBRIDGE_HOME"] = home
            from hostbridge.machines import steps

            t0 = time.perf_counter()
            steps.engine_blob()
            print("engine drive (built once per hostbridge version): %.1f s" % (time.perf_counter() - t0))
            os.environ.pop("HOSTBRIDGE_HOME")
        cold, out = hb(env, *up)
        report = image_report(img)
        serial = os.path.join(mdir, "serial.log")
        print("cold up (new machine, image cached) to engine ready: %.1f s  [%s] (target <= 10 s)"
              % (cold, stages(out)))
        print("  guest boot (guest clock from kernel start): %s" % guest_timeline(serial))
        fast = sorted(hb(env, "up", "--machine", NAME)[0] for _ in range(args.runs))
        print("up on the running machine (%d runs): median %.3f s, min %.3f s, max %.3f s (target <= 0.5 s)"
              % (args.runs, statistics.median(fast), fast[0], fast[-1]))
        time.sleep(args.idle)
        with open(os.path.join(mdir, "qemu.pid")) as f:
            pid = int(f.read())
        _, free = hb(env, "ssh", "--machine", NAME, "--", "free", "-m")
        used = [ln.split() for ln in free.splitlines() if ln.startswith("Mem:")][0]
        print("idle VM (%s MiB given, %.0f s after up): QEMU RSS %.0f MiB; guest free -m: used %s MiB, "
              "buff/cache %s MiB" % (args.memory, args.idle, rss_mib(pid), used[2], used[5]))
        # Side by side in one run: suspend/resume (the new down/up) and shutdown/boot (today's);
        # the resume as before the agent started with QEMU's load (BEFORE_CLI); and the
        # suspend/resume round over SSH, as for a VM without the guest's command channel.
        rounds = (("", True, False), (" as before (agent started after the load, /info looked at)", True, True),
                  (" over SSH (no command channel, as before)", False, False))
        for _ in range(args.suspend_runs):
            for how, channel, before in rounds:
                commands(mdir, channel)
                down, out = hb(env, "down", "--machine", NAME)
                saved = re.search(r"\(([\d.]+) MiB saved\)", out)
                print("down (suspend)%s: %.1f s (target <= 2 s); saved state %s MiB for %s MiB of guest RAM"
                      % (how, down, saved.group(1) if saved else "?", args.memory))
                resumed, out = hb(env, "-v", "up", "--machine", NAME, before=before)
                print("up from suspended%s: %.1f s  [%s] (target <= 2 s)" % (how, resumed, stages(out)))
                commands(mdir, True)
        down, _ = hb(env, "down", "--shutdown", "--machine", NAME)
        print("down --shutdown (a real shutdown): %.1f s (target <= 3 s)" % down)
        print("  guest shutdown: %s" % guest_timeline(serial, ("shutdown", "disk clean")))
        warm, out = hb(env, "-v", "up", "--machine", NAME)
        print("up from stopped (a boot; engine on the data disk): %.1f s  [%s] (target <= 10 s)" % (warm, stages(out)))
        print("  guest boot: %s" % guest_timeline(serial))
    finally:
        if os.path.exists(os.path.join(mdir, "machine.json")):
            subprocess.run(PYTHON + ["-m", "hostbridge.cli", "destroy", "-f", "--machine", NAME], env=env,
                           cwd=REPO, capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", home])
    print("host load average (1, 5, 15 min) at the end: %.1f %.1f %.1f on %d CPUs: other work inflates every figure"
          % (os.getloadavg() + (os.cpu_count(),)))
    print(report)


if __name__ == "__main__":
    main()
