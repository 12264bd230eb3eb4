"""Offline test images from Debian's busybox-static: a rootfs tar nothing had to download."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "ana:x:1000:1000:Ana:/home/ana:/bin/sh\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nusers:x:100:ana\nnogroup:x:65534:\nana:x:1000:\n"


def applets(busybox: str = BUSYBOX) -> list:
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def write_rootfs_tar(dest: str, busybox: str = BUSYBOX) -> str:
    """Write a busybox rootfs as an uncompressed tar at ``dest`` (deterministic: mtime 0)."""
    if not os.path.exists(busybox):
        raise RuntimeError("%s is missing: apt-get install busybox-static" % busybox)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(ti)

        def add_file(name, data: bytes, mode=0o644):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 0
            tar.addfile(ti, io.BytesIO(data))

        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "home/ana",
                  "var", "var/www", "proc", "sys", "dev", "run"):
            add_dir(d, 0o700 if d == "root" else 0o755)
        add_dir("tmp", 0o1777)
        with open(busybox, "rb") as f:
            add_file("bin/busybox", f.read(), 0o755)
        for path in applets(busybox):
            if path == "bin/busybox":
                continue
            ti = tarfile.TarInfo(path)
            ti.type, ti.mtime = tarfile.SYMTYPE, 0
            ti.linkname = "/bin/busybox"
            tar.addfile(ti)
        add_file("etc/passwd", PASSWD.encode())
        add_file("etc/group", GROUP.encode())
        add_file("etc/hostname", b"busybox\n")
    return dest


def cached_rootfs_tar(cache_dir: str) -> str:
    """The rootfs tar in ``cache_dir`` (made once)."""
    os.makedirs(cache_dir, exist_ok=True)
    dest = os.path.join(cache_dir, "busybox-rootfs.tar")
    if not os.path.exists(dest):
        tmp = dest + ".tmp"
        write_rootfs_tar(tmp)
        shutil.move(tmp, dest)
    return dest
