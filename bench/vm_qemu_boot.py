"""Cold boot of the QEMU guest image to sshd, idle memory, image size (numbers, not asserts).

    python3 bench/vm_qemu_boot.py [--runs 3] [--cpus 1] [--memory 512]

Prints, per run: seconds from `start()` to the SSH banner, the serial console's milestones
(first byte, kernel handing over to /init, hostbridge-init's "boot done"), then the idle
guest's memory (`free -m` inside) and QEMU's RSS on the host, and the image's files' sizes.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hostbridge.machines import driver, image  # noqa: E402
from hostbridge.machines.qemu import QemuDriver  # noqa: E402

MILESTONES = (("first console byte", b""), ("kernel: Linux version", b"Linux version"),
              ("kernel: Run /init", b"Run /init"), ("init: sshd started", b"sshd started"),
              ("init: boot done", b"boot done"), ("sshd listening", b"Server listening"))


def watch(path, t0, seen, stop):
    while not stop.is_set():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        for name, mark in MILESTONES:
            if name not in seen and data and mark in data:
                seen[name] = time.monotonic() - t0
        time.sleep(0.02)


def ssh_run(info, cmd):
    import paramiko
    import base64

    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = info.host_key.split()[:2]
    c.get_host_keys().add("[%s]:%d" % (info.host, info.port), kind, paramiko.Ed25519Key(data=base64.b64decode(blob)))
    c.connect(info.host, info.port, username=info.user, key_filename=info.key_path, look_for_keys=False,
              allow_agent=False)
    try:
        _, out, _ = c.exec_command(cmd)
        return out.read().decode()
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", type=int, default=512)
    args = ap.parse_args()
    img = image.build()
    for name in image.IMAGE_FILES:
        print("image %-13s %7.1f MiB" % (name, os.path.getsize(os.path.join(img.dir, name)) / 2**20))
    with tempfile.TemporaryDirectory() as tmp:
        d = QemuDriver(driver.MachineSpec(name="bench", dir=os.path.join(tmp, "m"), cpus=args.cpus,
                                          memory_mib=args.memory, disk_gib=8, shares=(tmp,), image_dir=img.dir))
        try:
            d.create()
            for run in range(args.runs):
                seen, stop = {}, threading.Event()
                if os.path.exists(d.files.serial_log):
                    os.remove(d.files.serial_log)
                t0 = time.monotonic()
                w = threading.Thread(target=watch, args=(d.files.serial_log, t0, seen, stop))
                w.start()
                d.start()
                info = d.wait_ssh(timeout=300)
                total = time.monotonic() - t0
                stop.set()
                w.join()
                steps = ", ".join("%s %.2f" % (n, seen[n]) for n, _ in MILESTONES if n in seen)
                print("run %d (accel %s): SSH banner after %.2f s  [%s]" % (run + 1, d._record()["accel"], total, steps))
                if run == args.runs - 1:
                    time.sleep(10)  # let the guest settle before measuring idle memory
                    print(ssh_run(info, "free -m | sed -n 1,2p").rstrip())
                    with open("/proc/%d/status" % d._pid()) as f:
                        rss = [line.split()[1] for line in f if line.startswith("VmRSS")][0]
                    print("QEMU RSS on the host: %.0f MiB" % (int(rss) / 1024))
                d.stop()
        finally:
            d.destroy()


if __name__ == "__main__":
    main()
