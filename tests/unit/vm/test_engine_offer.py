"""The engine a boot brings along: the host's offer (steps.engine_offer: fw_cfg engine.json and
a read-only drive), the guest init's install of it (provision/guest-init.py, on temp dirs), and
the host reading what the guest says of it on the readiness port. The vm tier boots the real
thing (tests/vm/test_vm_engine_offer.py)."""

import base64
import contextlib
import hashlib
import io
import json
import os
import socket
import stat
import threading
import time
import zlib

import pytest

from hostbridge import deploy
from hostbridge.machines import qemu_cmd, steps
from hostbridge.machines.record import Machine
from tests.unit.vm.test_vm_guest_init import load_init


@pytest.fixture
def guest(tmp_path, monkeypatch):
    """The guest init with its engine paths, /sys/block and /dev under tmp_path."""
    init = load_init()
    lib, root = tmp_path / "usr/local/lib/hostbridge", tmp_path / "var/lib/hostbridge"
    lib.mkdir(parents=True)
    root.mkdir(parents=True)
    monkeypatch.setattr(init, "ENGINE", str(lib / "engine.pyz"))
    monkeypatch.setattr(init, "ENGINE_STAMP", str(lib / ".engine-offer"))
    monkeypatch.setattr(init, "ENGINE_RELAY", str(lib / "relay.py"))
    monkeypatch.setattr(init, "ENGINE_SHIM", str(tmp_path / "usr/local/bin/docker"))
    monkeypatch.setattr(init, "ENGINE_ROOT", str(root))
    monkeypatch.setattr(init, "log", lambda msg: None)
    sys_block, dev = tmp_path / "sys/block", tmp_path / "dev"
    for name in ("vda", "vdb"):
        (sys_block / name).mkdir(parents=True)
    (sys_block / "vda" / "serial").write_text("\n")
    (sys_block / "vdb" / "serial").write_text(qemu_cmd.ENGINE_SERIAL + "\n")
    dev.mkdir()
    (dev / "vda").write_bytes(b"\0" * 4096)
    reads = []

    def read_drive(size):
        reads.append(size)
        return init.read_engine_drive.__wrapped__(size, str(sys_block), str(dev))

    read_drive.__wrapped__ = init.read_engine_drive
    monkeypatch.setattr(init, "read_engine_drive", read_drive)
    init.tmp, init.lib, init.root, init.drive, init.reads = tmp_path, lib, root, dev / "vdb", reads
    return init


def offer_for(init, data, version="9.9", **extra):
    """Put ``data`` on the guest's engine drive (zero-padded) and return the host's offer for it."""
    init.drive.write_bytes(data + b"\0" * (-len(data) % 512))
    offer = {"version": version, "name": "engine-%s.pyz" % version, "sha256": hashlib.sha256(data).hexdigest(),
             "size": len(data), "crc32": zlib.crc32(data), "relay": "# relay\n", "shim": "#!/bin/sh\n# shim\n",
             "settings": None,
             "host_paths": None}
    offer.update(extra)
    return offer


def test_the_guest_installs_the_offered_engine_once(guest):
    offer = offer_for(guest, b"PK engine bytes" * 100)
    assert guest.install_engine(offer) is None
    assert os.readlink(guest.ENGINE) == "engine-9.9.pyz"
    assert (guest.lib / "engine-9.9.pyz").read_bytes() == b"PK engine bytes" * 100
    assert (guest.lib / "relay.py").read_text() == "# relay\n"
    assert stat.S_IMODE(os.stat(guest.ENGINE_SHIM).st_mode) == 0o755
    assert guest.engine_version() == "9.9"
    assert guest.reads == [1500]
    # The next boot with the same offer reads nothing.
    assert guest.install_engine(offer) is None
    assert guest.reads == [1500]


def test_an_engine_of_another_version_is_replaced(guest):
    assert guest.install_engine(offer_for(guest, b"old engine", version="0.0.1")) is None
    assert guest.install_engine(offer_for(guest, b"new engine", version="0.2")) is None
    assert os.readlink(guest.ENGINE) == "engine-0.2.pyz"
    assert sorted(n for n in os.listdir(guest.lib) if n.endswith(".pyz")) == ["engine-0.2.pyz", "engine.pyz"]


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_a_damaged_engine_is_refused_and_the_old_one_stays(guest, damage):
    assert guest.install_engine(offer_for(guest, b"old engine", version="0.0.1")) is None
    data = b"new engine " * 200
    offer = offer_for(guest, data, version="0.2")
    if damage == "corrupt":
        guest.drive.write_bytes(b"X" + data[1:])
    elif damage == "truncated":
        guest.drive.write_bytes(data[:1000])
    else:
        (guest.tmp / "sys/block/vdb/serial").write_text("other\n")
    why = guest.install_engine(offer)
    assert why and "corrupt or truncated" in why
    assert os.readlink(guest.ENGINE) == "engine-0.0.1.pyz"
    assert (guest.lib / "engine-0.0.1.pyz").read_bytes() == b"old engine"
    assert not (guest.lib / "engine-0.2.pyz").exists()


def test_an_offer_without_a_crc_is_checked_by_its_sha256(guest):
    data = b"new engine " * 200
    offer = offer_for(guest, data, version="0.2")
    del offer["crc32"]
    guest.drive.write_bytes(b"X" + data[1:])
    assert "corrupt or truncated" in guest.install_engine(offer)
    guest.drive.write_bytes(data)
    assert guest.install_engine(offer) is None and os.readlink(guest.ENGINE) == "engine-0.2.pyz"


def test_an_offer_naming_a_path_is_refused(guest):
    assert "not an engine-VERSION.pyz" in guest.install_engine(dict(offer_for(guest, b"x"), name="../../sbin/init"))
    assert not os.path.lexists(guest.ENGINE)


def test_the_guest_writes_the_engines_settings_and_share_map_from_the_offer(guest):
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    settings = {"daemon": {"proxies": {"http-proxy": "http://10.0.2.2:3128"},
                           "registry-ca": ["/var/lib/hostbridge/ca/00-corp.pem"]},
                "cas": [["00-corp.pem", base64.b64encode(pem).decode()]]}
    guest.place_engine_settings({"settings": settings, "host_paths": {"C:\\Users": "/c/Users"}})
    written = guest.root / "engine-settings.json"
    assert json.loads(written.read_text()) == settings["daemon"]
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert (guest.root / "ca" / "00-corp.pem").read_bytes() == pem
    assert json.loads((guest.root / "host-paths.json").read_text()) == {"C:\\Users": "/c/Users"}
    guest.place_engine_settings({"settings": None, "host_paths": None})  # none given: left as they are
    assert json.loads(written.read_text()) == settings["daemon"]


@pytest.fixture
def record(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "home"))
    rec = Machine("offer-test", "vm", "qemu", fields={"shares": []})
    os.makedirs(rec.paths.dir)
    return rec


def test_the_host_offers_the_engine_on_a_sector_padded_drive_built_once(record):
    offer = steps.engine_offer(record, None)
    drive = offer["drive"]
    with open(drive, "rb") as f:
        data = f.read()
    assert len(data) % 512 == 0 and len(data) - offer["size"] < 512
    assert hashlib.sha256(data[:offer["size"]]).hexdigest() == offer["sha256"]
    assert zlib.crc32(data[:offer["size"]]) == offer["crc32"]
    assert data[offer["size"]:].strip(b"\0") == b""
    layout = steps.guest_layout()
    assert offer["name"] == os.path.basename(layout.zipapp) and offer["version"] == deploy.engine_version()
    assert offer["shim"] == deploy.shim_script(layout) and layout.shim == "/usr/local/bin/docker"
    assert offer["settings"] is None and offer["host_paths"] == {}
    assert stat.S_IMODE(os.stat(record.paths.engine_offer).st_mode) == 0o600
    with open(record.paths.engine_offer) as f:
        assert json.load(f) == offer
    # Stable per engine: the next offer trusts the drive's stamp (no rebuild, same path).
    mtime = os.stat(drive).st_mtime_ns
    assert steps.engine_offer(record, None)["drive"] == drive and os.stat(drive).st_mtime_ns == mtime
    # A drive written since (its stamp differs) is built again.
    with open(drive, "r+b") as f:
        f.write(b"X")
    again = steps.engine_offer(record, None)
    with open(drive, "rb") as f:
        assert hashlib.sha256(f.read()[:again["size"]]).hexdigest() == again["sha256"] == offer["sha256"]


def test_the_drive_ships_only_the_guest_pythons_compiled_modules(record):
    """Kept beside the guest's (a host whose Python differs compiled its own there too), another
    Python's modules are not on the drive: the guest would only unpack them for nothing."""
    import zipfile

    from hostbridge.machines.guestimage.assemble import GUEST_PYTHON

    guest_tag = "cpython-%d%d" % GUEST_PYTHON
    kept = os.path.join(steps.engine_pyc_dir(), "hostbridge", "__pycache__")
    os.makedirs(kept)
    for tag in (guest_tag, "cpython-399"):
        with open(os.path.join(kept, "__init__.%s.pyc" % tag), "wb") as f:
            f.write(b"pyc of " + tag.encode())
    offer = steps.engine_offer(record, None)
    with open(offer["drive"], "rb") as f:
        with zipfile.ZipFile(io.BytesIO(f.read()[:offer["size"]])) as z:
            tags = {n.rsplit(".", 2)[-2] for n in z.namelist() if n.endswith(".pyc")}
    assert guest_tag in tags and "cpython-399" not in tags


def test_the_offer_carries_proxies_and_cas_as_write_settings_would(record, tmp_path):
    ca = tmp_path / "corp.pem"
    ca.write_bytes(b"PEM")
    proxies = {"http-proxy": "http://10.0.2.2:3128", "https-proxy": "", "no-proxy": ""}
    offer = steps.engine_offer(record, (proxies, [str(ca)]))
    layout = steps.guest_layout()
    assert offer["settings"] == {"daemon": {"proxies": proxies, "registry-ca": [layout.root + "/ca/00-corp.pem"]},
                                 "cas": [["00-corp.pem", base64.b64encode(b"PEM").decode()]]}
    none = {"http-proxy": "", "https-proxy": "", "no-proxy": ""}
    assert steps.engine_offer(record, (none, []))["settings"] is None  # none, never any: nothing to write
    record.fields["engine_settings"] = "earlier"
    assert steps.engine_offer(record, (none, []))["settings"]["daemon"]["proxies"] == none  # cleared


def test_the_engine_drive_comes_after_the_data_disk():
    cfg = qemu_cmd.QemuConfig(system="Linux", arch="x86_64", accel="tcg", cpus=1, memory_mib=512,
                              disk="/m/disk.qcow2", kernel="/i/k", initrd="/i/r", ssh_port=2222, qmp="unix:/m/q",
                              serial_log="/m/s", pidfile="/m/p", engine_drive="/c/engine,1.img")
    argv = qemu_cmd.build_command(cfg)
    drive = argv.index("if=none,id=engine0,format=raw,readonly=on,file=/c/engine,,1.img")
    assert argv.index("if=none,id=disk0,format=qcow2,discard=unmap,file=/m/disk.qcow2") < drive
    assert argv[drive + 2] == "virtio-blk-pci,drive=engine0,serial=" + qemu_cmd.ENGINE_SERIAL
    cfg.engine_drive = ""
    assert "engine0" not in " ".join(qemu_cmd.build_command(cfg))


@contextlib.contextmanager
def _guest_port(tmp_path, lines):
    """A stand-in for the guest's end of the readiness port: a unix socket (its path yielded)
    that says ``lines`` to the first connection and stays open until the block ends."""
    path = str(tmp_path / "ready.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    done = threading.Event()

    def guest():
        conn, _ = server.accept()
        conn.sendall(lines)
        done.wait(10)
        conn.close()

    t = threading.Thread(target=guest)
    t.start()
    try:
        yield path
    finally:
        done.set()
        t.join(5)
        server.close()


def _driver(tmp_path):
    from hostbridge.machines import driver
    from hostbridge.machines.qemu import QemuDriver

    d = QemuDriver(driver.MachineSpec(name="x", dir=str(tmp_path / "x")))
    d.check_booting = lambda deadline, timeout: None  # no QEMU here: the vm tier boots one
    return d


@pytest.mark.parametrize("lines,expected", [
    (b"ready init\nready engine 0.1.0\n", ("ready", "0.1.0")),
    (b"ready init\nengine refused the engine from the host is corrupt\nready engine 0.0.9\n",
     ("refused", "the engine from the host is corrupt")),
    (b"ready engine 0.1.0\nready init\n", ("ready", "0.1.0")),  # said while the host waited for sshd
    (b"ready init\nengine absent\n", ("failed", "absent")),
    (b"ready init\n", (None, "the guest did not say that its engine started")),
])
def test_the_host_hears_what_the_guest_says_of_its_engine(tmp_path, lines, expected):
    from hostbridge.machines.qemu import ReadyChannel

    with _guest_port(tmp_path, lines) as path:
        d = _driver(tmp_path)
        d._channel = ReadyChannel(path)
        while "ready init" not in d.events:  # as wait_ssh leaves it: the lines up to "ready init" read
            event = d._channel.next_event(1)
            if event:
                d.events.append(event)
        assert d.wait_engine(timeout=0.5) == expected
        assert d._channel is None


@pytest.mark.parametrize("offered", [True, False])
def test_sshd_is_taken_at_the_guests_word_when_the_boot_brings_the_engine(tmp_path, monkeypatch, offered):
    """With the engine offered at boot, "ready init" ends the wait unchecked (the tunnel agent's
    login is the first SSH); without, the deploy over SSH follows: sshd's banner is asked once."""
    from hostbridge.machines import driver, qemu

    banners = []
    monkeypatch.setattr(qemu, "ssh_banner", lambda host, port, timeout: banners.append(port) or True)
    with _guest_port(tmp_path, b"engine absent\nready init\n") as path:
        d = _driver(tmp_path)
        d._record = lambda: {"ready": path}
        d.ssh_info = lambda: driver.SSHInfo(host="127.0.0.1", port=2222, user="root", key_path="k")
        d.launched = time.monotonic() - 60
        try:
            info = d.wait_ssh(timeout=5, engine_offered=offered)
            assert info.port == 2222 and d.events == ["engine absent", "ready init"]
            assert banners == ([] if offered else [2222])
        finally:
            d.close_ready()


def test_guest_bytecode_is_wanted_only_from_a_host_whose_python_differs(monkeypatch, tmp_path):
    import sys

    from hostbridge.machines.guestimage.assemble import GUEST_PYTHON

    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    guest_tag = "cpython-%d%d" % GUEST_PYTHON
    assert not steps.wants_guest_bytecode("vagrant")
    monkeypatch.setattr(sys.implementation, "cache_tag", guest_tag)
    assert not steps.wants_guest_bytecode("qemu")
    monkeypatch.setattr(sys.implementation, "cache_tag", "cpython-399")
    assert steps.wants_guest_bytecode("qemu")
    kept = os.path.join(steps.engine_pyc_dir(), "hostbridge", "__pycache__")
    os.makedirs(kept)
    open(os.path.join(kept, "__init__.%s.pyc" % guest_tag), "w").close()
    assert not steps.wants_guest_bytecode("qemu")
