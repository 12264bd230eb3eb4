"""The image's bytecode seed: what the first machine of an image compiled of the image's own
modules (its stdlib, its init), kept once on the host as a second newc archive appended to the
initrd QEMU boots (image.keep_bytecode_seed, steps.keep_pycache_seed), so that every next
boot's kernel unpacks it into RAM with the rest; the guest init links the data disk's pycache
tree of the stdlib to it (provision/guest-init.py link_image_pycache). Here on temp dirs with
this host's own Python compiling; the vm tier boots the real thing (tests/vm/test_vm_pycache_seed.py)."""

import gzip
import json
import os
import stat
import subprocess
import sys

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import image, qemu_cmd, steps
from hostbridge.machines.guestimage import cpio
from hostbridge.machines.record import Machine
from tests.unit.test_zipapp_unpack import _LocalShell
from tests.unit.vm.test_vm_guest_init import load_init

IMAGE_ID = "amd64-bookworm-0123456789abcdef"
SEED = [("/usr/lib/hostbridge/pycache/usr/lib/python3.11/json/decoder.cpython-311.pyc", b"\xa7\r\r\n decoder"),
        ("/usr/lib/hostbridge/pycache/usr/lib/python3.11/argparse.cpython-311.pyc", b"\xa7\r\r\n argparse" * 300)]


def _base_cpio(*names):
    out = __import__("io").BytesIO()
    w = cpio.Writer(out)
    w.add("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n")
    for name in names:
        w.add(name, stat.S_IFREG | 0o644, b"from the image")
    w.close()
    return out.getvalue()


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "images" / IMAGE_ID
    d.mkdir(parents=True)
    (d / "kernel").write_bytes(b"\x7fELF kernel")
    base = _base_cpio("usr/lib/hostbridge/hostbridge-init.pyc") + b"\0" * 100  # not a multiple of 512
    (d / "initrd.img").write_bytes(gzip.compress(base, mtime=0))
    return str(d)


def _archives(data):
    """The entries of each newc archive in ``data`` (concatenated, zero-padded between)."""
    out, off = [], 0
    while off < len(data):
        while off < len(data) and data[off] == 0:
            off += 1
        if off >= len(data):
            break
        entries = list(cpio.read(data[off:]))
        out.append(entries)
        end = data.index(b"TRAILER!!!", off)
        off = end + len(b"TRAILER!!!\0")
    return out


def test_a_seed_archive_makes_each_parent_first_and_refuses_what_is_not_a_plain_pyc_path():
    entries = list(cpio.read(image.seed_archive(SEED)))
    names = [e.name for e in entries]
    for i, e in enumerate(entries):  # every parent before what it holds (the kernel creates none)
        parent = os.path.dirname(e.name)
        assert parent == "" or names.index(parent) < i, e.name
        assert (e.uid, e.gid, e.mtime) == (0, 0, image.SEED_MTIME)
    files = {"/" + e.name: e.data for e in entries if stat.S_ISREG(e.mode)}
    assert files == dict(SEED)
    for bad in ("usr/lib/x.pyc", "/usr/lib/../../etc/x.pyc", "/usr/lib/x.py", "/usr//lib/x.pyc"):
        with pytest.raises(VMError):
            image.seed_archive([(bad, b"x")])
    skipped = list(cpio.read(image.seed_archive(SEED, skip={SEED[0][0].lstrip("/")})))
    assert [e.name for e in skipped if stat.S_ISREG(e.mode)] == [SEED[1][0].lstrip("/")]


def test_the_seed_is_appended_to_the_boot_initrd_and_booted_until_the_file_changes(image_dir):
    img = image.GuestImage(image_dir)
    boot = image.boot_initrd(img)
    base = open(boot, "rb").read()
    assert boot.endswith(image.BOOT_INITRD) and not image.has_seed(image_dir)
    assert image.keep_bytecode_seed(image_dir, SEED) == 2
    assert image.has_seed(image_dir) and image.boot_initrd(img) == boot
    data = open(boot, "rb").read()
    assert data.startswith(base)
    seed_at = len(base) + (-len(base) % 512)
    assert not data[len(base):seed_at].strip(b"\0") and data[seed_at:seed_at + 6] == cpio.MAGIC
    first, second = _archives(data)
    assert [e.name for e in first] == [e.name for e in cpio.read(base)]
    assert {"/" + e.name: e.data for e in second if stat.S_ISREG(e.mode)} == dict(SEED)
    meta = json.load(open(os.path.join(image_dir, image.SEED_META)))
    assert meta["files"] == 2 and meta["size"] == len(data) - seed_at
    # What the image has already is not kept again: nothing new, nothing written.
    stamp = image.file_stamp(boot)
    assert image.keep_bytecode_seed(image_dir, [("/usr/lib/hostbridge/hostbridge-init.pyc", b"x")]) == 0
    assert image.file_stamp(boot) == stamp
    # A boot initrd changed behind the host's back is made again, without a seed (the next new
    # machine keeps one again).
    with open(boot, "r+b") as f:
        f.write(b"X")
    assert not image.has_seed(image_dir)
    assert image.boot_initrd(img) == boot and open(boot, "rb").read() == base


def test_an_unreadable_image_initrd_keeps_no_seed(image_dir):
    with open(os.path.join(image_dir, "initrd.img"), "wb") as f:
        f.write(b"\x1f\x8b not gzip")
    with pytest.raises(VMError):
        image.keep_bytecode_seed(image_dir, SEED)
    assert not image.has_seed(image_dir)


@pytest.fixture
def record(tmp_path, monkeypatch, image_dir):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "home"))
    rec = Machine("seed-test", "vm", "qemu", fields={"shares": [], "image_dir": image_dir})
    os.makedirs(rec.paths.dir)
    return rec


def test_keeping_a_seed_leaves_the_boots_command_line_as_it_was(record, image_dir):
    """A VM suspended before its image's seed was kept still resumes (its saved state's
    fingerprint is the command line): the initrd's path stays, and no drive comes or goes."""
    from hostbridge.machines import driver
    from hostbridge.machines.qemu import QemuDriver

    offer = steps.engine_offer(record, None)
    assert "pycache" not in offer
    d = QemuDriver(driver.MachineSpec(name=record.name, dir=record.paths.dir))
    rec = {"cpus": 1, "memory_mib": 512, "ssh_port": 2222, "ready": ""}
    img = image.GuestImage(image_dir)
    argv = qemu_cmd.build_command(d._config(rec, img, "tcg"))
    assert argv[argv.index("-initrd") + 1] == os.path.join(image_dir, image.BOOT_INITRD)
    assert "if=none,id=engine0,format=raw,readonly=on,file=%s" % offer["drive"] in argv
    assert not [a for a in argv if "pycache" in a]
    before = d._fingerprint(rec, img, "tcg")
    assert steps.wants_pycache_seed(record)
    image.keep_bytecode_seed(image_dir, SEED)
    assert not steps.wants_pycache_seed(record)  # kept since (by another machine's `up`)
    assert d._fingerprint(rec, img, "tcg") == before
    assert qemu_cmd.build_command(d._config(rec, img, "tcg")) == argv
    with open(record.paths.engine_offer, "w") as f:
        json.dump(dict(offer, drive="/gone/engine.img"), f)
    assert d._engine_drive() == ""
    del record.fields["image_dir"]
    assert not steps.wants_pycache_seed(record)


def test_what_one_python_compiled_is_kept_and_the_next_imports_it_without_compiling(tmp_path, image_dir):
    """This host's Python stands for the guest's: it compiles under one pycache prefix (the
    first guest's RAM), the host keeps that as the image's seed (over a shell, as over SSH,
    which also compiles the init when the image has none), and unpacked under another prefix
    the same imports compile nothing."""
    code = "import argparse, json, tarfile, zipfile"
    guest_lib = tmp_path / "first"  # stands for the guest's /usr/lib/hostbridge
    first = [sys.executable, "-I", "-S", "-X", "pycache_prefix=%s" % (guest_lib / "pycache"), "-c", code]
    assert subprocess.run(first, timeout=60).returncode == 0
    init = tmp_path / "hostbridge-init"
    init.write_text("print('init')\n")
    kept = steps.keep_pycache_seed(_LocalShell(), image_dir, tree=str(guest_lib), init=str(init),
                                   init_pyc=str(guest_lib / "hostbridge-init.pyc"))
    assert kept >= 5
    data = open(os.path.join(image_dir, image.BOOT_INITRD), "rb").read()
    seed = {"/" + e.name: e.data for e in _archives(data)[1] if stat.S_ISREG(e.mode)}
    assert str(guest_lib / "hostbridge-init.pyc") in seed  # the init, compiled by the guest's Python
    second = tmp_path / "second"
    for path, body in seed.items():  # what the next guest's kernel unpacks (here: under another root)
        dest = second / os.path.relpath(path, str(guest_lib))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(body)
    again = [sys.executable, "-I", "-S", "-v", "-X", "pycache_prefix=%s" % (second / "pycache"), "-c", code]
    r = subprocess.run(again, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = [ln for ln in r.stderr.splitlines() if ln.startswith("# code object from") and "second" in ln]
    compiled = [ln for ln in r.stderr.splitlines() if ln.startswith("# created")]
    assert len(loaded) >= 4 and not compiled, compiled[:3]
    r = subprocess.run([sys.executable, "-I", "-S", str(second / "hostbridge-init.pyc")], capture_output=True,
                       text=True, timeout=60)
    assert r.stdout == "init\n"


def test_nothing_is_kept_when_the_guest_has_nothing_or_the_image_dir_is_not_writable(tmp_path, image_dir):
    none = dict(init=str(tmp_path / "no-init"), init_pyc=str(tmp_path / "none/init.pyc"))
    assert steps.keep_pycache_seed(_LocalShell(), image_dir, tree=str(tmp_path / "none"), **none) == 0
    assert not image.has_seed(image_dir)
    (tmp_path / "pfx/usr/lib").mkdir(parents=True)
    (tmp_path / "pfx/usr/lib/m.cpython-311.pyc").write_bytes(b"pyc")
    assert steps.keep_pycache_seed(_LocalShell(), str(tmp_path / "gone"), tree=str(tmp_path / "pfx"), **none) == 0


@pytest.fixture
def guest(tmp_path, monkeypatch):
    init = load_init()
    spawned = []
    monkeypatch.setattr(init, "spawn", lambda argv, setsid=True: spawned.append(argv) or 4242)
    init.spawned = spawned
    return init


def test_the_data_disks_stdlib_tree_links_to_the_images_compiled_modules_in_ram(tmp_path, guest):
    pycache, ram = tmp_path / "disk/pycache", tmp_path / "ram/pycache"
    stdlib = "usr/lib/python3.11"
    assert guest.link_image_pycache(str(pycache), str(ram), stdlib) is None
    link = pycache / stdlib
    assert os.readlink(link) == str(ram / stdlib) and (ram / stdlib).is_dir()
    assert guest.link_image_pycache(str(pycache), str(ram), stdlib) is None  # as it was: untouched
    assert guest.spawned == []
    # A data disk from an older guest kept them in a directory there: moved aside, removed behind.
    os.unlink(link)
    (link / "json").mkdir(parents=True)
    (link / "json/__init__.cpython-311.pyc").write_bytes(b"old")
    assert guest.link_image_pycache(str(pycache), str(ram), stdlib) is None
    assert os.readlink(link) == str(ram / stdlib)
    [[rm, flag, old]] = guest.spawned
    assert (rm, flag) == ("rm", "-rf") and os.path.isfile(os.path.join(old, "json/__init__.cpython-311.pyc"))
    # A prefix that cannot be written: said, never fatal.
    (tmp_path / "ro").write_text("a file, not a dir")
    assert "ro" in guest.link_image_pycache(str(tmp_path / "ro/pycache"), str(ram), stdlib)
