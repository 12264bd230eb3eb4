"""The image's bytecode seed: the stdlib modules the first machine of an image compiled, kept
once on the host beside the image (image.keep_pycache_seed, steps.keep_pycache_seed), offered to
every next boot on a read-only drive (steps.engine_offer, qemu_cmd.seed_drive_args) and unpacked
by the guest init into a new data disk's pycache (provision/guest-init.py install_pycache_seed),
here on temp dirs with this host's own Python compiling. The vm tier boots the real thing
(tests/vm/test_vm_pycache_seed.py)."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from hostbridge.machines import image, qemu_cmd, steps
from hostbridge.machines.record import Machine
from tests.unit.test_zipapp_unpack import _LocalShell
from tests.unit.vm.test_vm_guest_init import load_init

IMAGE_ID = "amd64-bookworm-0123456789abcdef"


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "images" / IMAGE_ID
    d.mkdir(parents=True)
    (d / "kernel").write_bytes(b"\x7fELF kernel")
    (d / "initrd.img").write_bytes(b"070701 initrd")
    return str(d)


@pytest.fixture
def guest(tmp_path, monkeypatch):
    """The guest init, its /sys/block and /dev under tmp_path: vdc is the seed's drive
    (``guest.drive``), its pycache ``guest.pycache``; ``guest.logged`` its console lines."""
    init = load_init()
    sys_block, dev = tmp_path / "sys/block", tmp_path / "dev"
    for name, serial in (("vda", ""), ("vdb", qemu_cmd.ENGINE_SERIAL), ("vdc", qemu_cmd.SEED_SERIAL)):
        (sys_block / name).mkdir(parents=True)
        (sys_block / name / "serial").write_text(serial + "\n")
    dev.mkdir()
    (dev / "vda").write_bytes(b"\0" * 4096)
    reads, logged = [], []
    read = init.read_engine_drive

    def read_drive(size, serial=init.ENGINE_SERIAL):
        reads.append((serial, size))
        return read(size, str(sys_block), str(dev), serial=serial)

    monkeypatch.setattr(init, "read_engine_drive", read_drive)
    monkeypatch.setattr(init, "log", logged.append)
    init.drive, init.pycache, init.reads, init.logged = dev / "vdc", tmp_path / "pycache", reads, logged
    init.pycache.mkdir()
    return init


def offer_seed(init, files, image_id=IMAGE_ID, data=None):
    """Put a seed of ``files`` (or the raw ``data``) on the guest's seed drive, zero-padded as the
    host does; return the offer that names it."""
    data = image.pack_seed(files) if data is None else data
    init.drive.write_bytes(data + b"\0" * (-len(data) % 512))
    return {"pycache": {"image": image_id, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "drive": "/host/path"}}


SEED = [("usr/lib/python3.11/json/decoder.cpython-311.pyc", b"\xa7\r\r\n decoder"),
        ("usr/lib/python3.11/argparse.cpython-311.pyc", b"\xa7\r\r\n argparse" * 300)]


def test_the_guest_unpacks_the_seed_once_per_data_disk_and_image(guest):
    offer = offer_seed(guest, SEED)
    assert guest.install_pycache_seed(offer, str(guest.pycache)) == 2
    for name, data in SEED:
        assert (guest.pycache / name).read_bytes() == data
    assert (guest.pycache / ".seed").read_text() == IMAGE_ID + "\n"
    assert any("pycache seed: 2 modules unpacked" in line for line in guest.logged)
    assert not [p for p in guest.pycache.rglob("*") if p.name.endswith(".seed-tmp")]
    # A warm boot reads the stamp only: not the drive.
    reads = list(guest.reads)
    assert guest.install_pycache_seed(offer, str(guest.pycache)) == 0
    assert guest.reads == reads
    # A new image (an upgrade): its seed is unpacked over what is there.
    assert guest.install_pycache_seed(offer_seed(guest, SEED[:1], image_id="amd64-bookworm-new"),
                                      str(guest.pycache)) == 1
    assert (guest.pycache / ".seed").read_text() == "amd64-bookworm-new\n"


def test_a_first_machine_without_a_seed_stamps_its_pycache_and_never_unpacks_one_later(guest):
    empty = {"pycache": {"image": IMAGE_ID, "size": 0, "sha256": "", "drive": "/host/path"}}
    assert guest.install_pycache_seed(empty, str(guest.pycache)) == 0
    assert (guest.pycache / ".seed").read_text() == IMAGE_ID + "\n"
    assert guest.reads == [] and any("none for this image yet" in line for line in guest.logged)
    # Its next boots (the host kept its modules as the seed meanwhile): warm, nothing read.
    assert guest.install_pycache_seed(offer_seed(guest, SEED), str(guest.pycache)) == 0
    assert guest.reads == [] and not (guest.pycache / "usr").exists()
    # No seed in the offer (an older host): nothing done at all.
    assert guest.install_pycache_seed({}, str(guest.pycache / "other")) == 0
    assert not (guest.pycache / "other").exists()


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing", "not a seed"])
def test_a_damaged_seed_is_ignored_with_a_log_line(guest, damage):
    offer = offer_seed(guest, SEED)
    data = guest.drive.read_bytes()
    if damage == "corrupt":
        guest.drive.write_bytes(data[:40] + b"X" + data[41:])
    elif damage == "truncated":
        guest.drive.write_bytes(data[:100])
    elif damage == "missing":
        (guest.drive.parent.parent / "sys/block/vdc/serial").write_text("other\n")
    else:
        offer = offer_seed(guest, [], data=b"PK\3\4 a zip, not a seed")
    assert guest.install_pycache_seed(offer, str(guest.pycache)) == 0
    assert not (guest.pycache / "usr").exists()
    assert [line for line in guest.logged if line.startswith("pycache seed ignored: ")]
    assert (guest.pycache / ".seed").read_text() == IMAGE_ID + "\n"  # the engine compiles: not tried again


@pytest.mark.parametrize("name", ["/etc/passwd.pyc", "../x.pyc", "usr/lib/../../../x.pyc", "usr//lib/x.pyc",
                                  "./x.pyc", "usr/lib/x.py", "usr/lib/x\0.pyc"])
def test_a_seed_naming_a_path_outside_the_pycache_is_refused_whole(guest, tmp_path, name):
    offer = offer_seed(guest, SEED[:1] + [(name, b"\xa7\r\r\n hostile")])  # sha256 right: the host's own
    assert guest.install_pycache_seed(offer, str(guest.pycache)) == 0
    assert not (guest.pycache / "usr").exists()  # not even the good entry before it
    assert not (tmp_path / "x.pyc").exists() and not (tmp_path / "etc").exists()
    assert any("not a .pyc below the pycache" in line for line in guest.logged)


def test_a_seed_that_cannot_be_unpacked_does_not_stop_the_engines_start(guest, monkeypatch):
    installed = []

    def no_room(offer):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(guest, "engine_offer", lambda: {"pycache": {"image": IMAGE_ID}})
    monkeypatch.setattr(guest, "install_pycache_seed", no_room)
    monkeypatch.setattr(guest, "install_engine", lambda offer: installed.append(offer))
    monkeypatch.setattr(guest, "place_engine_settings", lambda offer: None)
    monkeypatch.setattr(guest, "ENGINE", str(guest.pycache / "no-engine.pyz"))
    monkeypatch.setattr(guest, "tell_host", lambda event: None)
    guest.Init().start_engine()
    assert installed and any("pycache seed ignored: " in line and "No space" in line for line in guest.logged)


def test_an_image_offers_an_empty_seed_drive_until_one_is_kept(image_dir):
    drive, size, sha = image.pycache_seed(image_dir)
    assert drive == os.path.join(image_dir, image.PYCACHE_SEED) and (size, sha) == (0, "")
    with open(drive, "rb") as f:
        assert f.read() == b"\0" * 512
    files = [("usr/lib/python3.11/json/__init__.cpython-311.pyc", b"pyc one"),
             ("usr/lib/python3.11/re/_parser.cpython-311.pyc", b"pyc two" * 100)]
    kept = image.keep_pycache_seed(image_dir, files)
    again, size, sha = image.pycache_seed(image_dir)
    assert again == drive and size == kept  # the same path: a boot's command line does not change
    with open(drive, "rb") as f:
        data = f.read()
    assert len(data) % 512 == 0 and hashlib.sha256(data[:size]).hexdigest() == sha
    assert data[:size] == image.pack_seed(files) and not data[size:].strip(b"\0")
    # A drive changed behind the host's back is no seed (the next new machine keeps one again).
    with open(drive, "r+b") as f:
        f.write(b"X")
    assert image.pycache_seed(image_dir) == (drive, 0, "")


def test_an_image_dir_that_cannot_hold_a_seed_offers_no_drive(image_dir):
    assert image.pycache_seed(os.path.join(image_dir, "missing")) == ("", 0, "")


@pytest.fixture
def record(tmp_path, monkeypatch, image_dir):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "home"))
    rec = Machine("seed-test", "vm", "qemu", fields={"shares": [], "image_dir": image_dir})
    os.makedirs(rec.paths.dir)
    return rec


def test_the_boot_offers_the_images_seed_and_keeps_its_command_line_once_one_is_kept(record, image_dir):
    """The seed drive is on the command line from the image's first boot: a VM suspended before
    its image's seed was kept still resumes (its saved state's fingerprint is the command line)."""
    from hostbridge.machines import driver
    from hostbridge.machines.qemu import QemuDriver

    offer = steps.engine_offer(record, None)
    drive = os.path.join(image_dir, image.PYCACHE_SEED)
    assert offer["pycache"] == {"image": IMAGE_ID, "size": 0, "sha256": "", "drive": drive}
    with open(record.paths.engine_offer) as f:
        assert json.load(f)["pycache"] == offer["pycache"]  # fw_cfg's engine.json says it to the guest
    d = QemuDriver(driver.MachineSpec(name=record.name, dir=record.paths.dir))
    rec = {"cpus": 1, "memory_mib": 512, "ssh_port": 2222, "ready": ""}
    img = image.GuestImage(image_dir)
    argv = qemu_cmd.build_command(d._config(rec, img, "tcg"))
    seed = argv.index("if=none,id=pycache0,format=raw,readonly=on,file=%s" % drive)
    assert argv.index("if=none,id=engine0,format=raw,readonly=on,file=%s" % offer["drive"]) < seed
    assert argv[seed + 2] == "virtio-blk-pci,drive=pycache0,serial=" + qemu_cmd.SEED_SERIAL
    before = d._fingerprint(rec, img, "tcg")
    assert steps.wants_pycache_seed(record, offer)
    image.keep_pycache_seed(image_dir, [("usr/lib/python3.11/x.cpython-311.pyc", b"pyc")])
    assert not steps.wants_pycache_seed(record, offer)  # kept since (by another machine's `up`)
    offer = steps.engine_offer(record, None)
    assert offer["pycache"]["size"] > 0 and not steps.wants_pycache_seed(record, offer)
    assert d._fingerprint(rec, img, "tcg") == before


def test_no_seed_drive_without_an_image_or_the_engines_drive(record, image_dir):
    from hostbridge.machines import driver
    from hostbridge.machines.qemu import QemuDriver

    d = QemuDriver(driver.MachineSpec(name=record.name, dir=record.paths.dir))
    offer = steps.engine_offer(record, None)
    assert d._offered_drives() == (offer["drive"], offer["pycache"]["drive"])
    with open(record.paths.engine_offer, "w") as f:
        json.dump(dict(offer, drive="/gone/engine.img"), f)
    assert d._offered_drives() == ("", "")
    del record.fields["image_dir"]
    offer = steps.engine_offer(record, None)
    assert "pycache" not in offer and not steps.wants_pycache_seed(record, offer)
    assert d._offered_drives() == (offer["drive"], "")


def test_what_one_python_compiled_is_kept_and_the_next_imports_it_without_compiling(tmp_path, image_dir, guest):
    """This host's Python stands for the guest's: it compiles under one pycache prefix, the host
    keeps that as the image's seed (over a shell, as over SSH), the guest init unpacks it into
    another prefix, and the same imports there compile nothing."""
    code = "import argparse, json, tarfile, zipfile"
    stdlib = os.path.dirname(os.__file__).lstrip("/")
    first = [sys.executable, "-I", "-S", "-X", "pycache_prefix=%s" % (tmp_path / "first"), "-c", code]
    assert subprocess.run(first, timeout=60).returncode == 0
    kept = steps.keep_pycache_seed(_LocalShell(), image_dir, prefix=str(tmp_path / "first"), tree=stdlib)
    assert kept >= 4
    drive, size, sha = image.pycache_seed(image_dir)
    with open(drive, "rb") as f:
        guest.drive.write_bytes(f.read())
    offer = {"pycache": {"image": IMAGE_ID, "size": size, "sha256": sha, "drive": drive}}
    assert guest.install_pycache_seed(offer, str(tmp_path / "second")) == kept
    second = [sys.executable, "-I", "-S", "-v", "-X", "pycache_prefix=%s" % (tmp_path / "second"), "-c", code]
    r = subprocess.run(second, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = [ln for ln in r.stderr.splitlines() if ln.startswith("# code object from") and "second" in ln]
    compiled = [ln for ln in r.stderr.splitlines() if ln.startswith("# created")]
    assert len(loaded) >= 4 and not compiled, compiled[:3]
    # Nothing of the first prefix's other trees (the engine's, on the data disk) is in the seed.
    os.makedirs(tmp_path / "first/usr/local/lib/hostbridge")
    (tmp_path / "first/usr/local/lib/hostbridge/engine.cpython-311.pyc").write_bytes(b"engine")
    assert steps.keep_pycache_seed(_LocalShell(), image_dir, prefix=str(tmp_path / "first"), tree=stdlib) == kept


def test_nothing_is_kept_when_the_guest_has_nothing_or_the_image_dir_is_not_writable(tmp_path, image_dir):
    assert steps.keep_pycache_seed(_LocalShell(), image_dir, prefix=str(tmp_path / "none")) == 0
    assert image.pycache_seed(image_dir)[1] == 0
    (tmp_path / "pfx/usr/lib").mkdir(parents=True)
    (tmp_path / "pfx/usr/lib/m.cpython-311.pyc").write_bytes(b"pyc")
    assert steps.keep_pycache_seed(_LocalShell(), str(tmp_path / "gone"), prefix=str(tmp_path / "pfx")) == 0
