"""Guests that cannot boot are reported at once, quoting the console line that says why: a
guest whose init is broken panics (QEMU exits: -no-reboot), and a data disk holding garbage
is refused by the guest and left untouched, with a hint. All traffic goes to 127.0.0.1."""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import time

import pytest

from hostbridge.machines import image
from hostbridge.machines.guestimage import cpio
from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm]
BOOT = 600


def broken_image(cache, good):
    """An image whose kernel is real and whose initramfs /init cannot run, under the key `up`
    looks for; it passes every check of its parts."""
    key = image.cache_key(image.debian_arch())
    d = os.path.join(cache, key)
    os.makedirs(d)
    shutil.copy(os.path.join(good.dir, "kernel"), os.path.join(d, "kernel"))
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        w = cpio.Writer(gz)
        w.add("init", 0o100755, b"\x7fELF not a program")
        w.add("padding", 0o100644, os.urandom(image.MIN_INITRD))
        w.close()
    with open(os.path.join(d, "initrd.img"), "wb") as f:
        f.write(raw.getvalue())
    parts = {}
    for name in ("kernel", "initrd.img"):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        parts[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump({"kernel_release": good.manifest["kernel_release"], "parts": parts}, f)
    image.load(d)
    return d


def test_a_guest_that_panics_fails_up_at_once_quoting_the_panic(tmp_path):
    good = image.load(os.path.join(shared_image_cache(), image.cache_key(image.debian_arch())))
    cache = str(tmp_path / "images")
    broken_image(cache, good)
    h = HostbridgeHome(str(tmp_path / "home"), cache)
    t0 = time.monotonic()
    r = h.hb("up", "--machine", "panics", "--driver", "qemu", "--memory", "512", "--disk", "1G", timeout=BOOT)
    spent = time.monotonic() - t0
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()[-1]
    assert "the guest failed to boot" in err and "Kernel panic - not syncing" in err, r.stderr
    # It is the panic that ended `up`, not the 300 s wait for SSH.
    assert spent < 300, spent
    h.hb("destroy", "-f", "--machine", "panics", timeout=120)


def test_a_data_disk_holding_garbage_is_refused_untouched_with_a_hint(tmp_path):
    h = HostbridgeHome(str(tmp_path / "home"), shared_image_cache())
    r = h.hb("up", "--machine", "garbage", "--driver", "qemu", "--memory", "512", "--disk", "1G", timeout=BOOT)
    assert r.returncode == 0, r.stderr
    assert h.hb("down", "--shutdown", "--machine", "garbage").returncode == 0
    disk = os.path.join(h.machine_dir("garbage"), "disk.qcow2")
    raw = str(tmp_path / "garbage.raw")
    with open(raw, "wb") as f:
        f.write(b"\0" * 4096 + b"NOT A FILESYSTEM" * 4096)
        f.truncate(64 << 20)
    os.remove(disk)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, disk], check=True)
    r = h.hb("up", "--machine", "garbage", timeout=BOOT)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()[-1]
    assert "HOSTBRIDGE-GUEST-ERROR: data disk" in err and "neither blank nor an ext4" in err, r.stderr
    assert "hostbridge destroy --machine garbage" in err and disk in err
    same = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, disk], capture_output=True)
    assert same.returncode == 0, same.stdout  # not one byte was written: no silent reformat
    h.hb("destroy", "-f", "--machine", "garbage", timeout=120)
