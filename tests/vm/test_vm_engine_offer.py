"""A boot brings the engine along (the QEMU guest's init installs it from a read-only drive,
fw_cfg engine.json saying what it is, and starts it beside sshd): a new machine's `up` copies
nothing over SSH, an engine of another version on the data disk is replaced at boot, and an
engine the guest finds damaged is refused (the old one stays) while the host deploys it over
SSH after all. One machine, booted four times under TCG. All traffic goes to 127.0.0.1."""

import json
import os
import time

import pytest

from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = pytest.mark.vm
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "offer%d" % (os.getpid() % 10000)
LIB = "/usr/local/lib/hostbridge"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmoffer")), shared_image_cache())
    yield h
    if os.path.exists(os.path.join(h.machine_dir(NAME), "machine.json")):
        h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def guest(host, cmd):
    return host.hb("ssh", "--machine", NAME, "--", cmd, check=True).stdout


def serial(host):
    with open(os.path.join(host.machine_dir(NAME), "serial.log"), "rb") as f:
        return f.read().decode(errors="replace")


def reboot(host):
    assert host.hb("down", "--shutdown", "--machine", NAME, timeout=120).returncode == 0
    r = host.hb("up", "--machine", NAME, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    return r


def engine_version(host):
    r = host.hb("--machine", NAME, "version", "--format", "{{.Server.Version}}", timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_new_machines_engine_comes_with_the_boot_not_over_ssh(host):
    from hostbridge import deploy

    r = host.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "2", "--memory", "768", "--disk", "3G",
                timeout=BOOT)
    assert r.returncode == 0, r.stderr
    # No SFTP and no SSH exec: the clock is set by the guest's command channel (the readiness port).
    assert "[deploy]" not in r.stderr, r.stderr
    for stage in ("boot", "ssh", "engine", "tunnel", "ping"):
        assert "[%s] " % stage in r.stderr
    assert "engine %s installed from the host" % deploy.engine_version() in serial(host)
    assert engine_version(host) == deploy.engine_version()
    assert guest(host, "readlink %s/engine.pyz" % LIB).strip() == "engine-%s.pyz" % deploy.engine_version()
    assert guest(host, "test -x /usr/local/bin/docker && test -f %s/relay.py && echo ok" % LIB) == "ok\n"
    with open(os.path.join(host.home, "state", "machines", NAME, "machine.json")) as f:
        assert json.load(f)["layout"]["version"] == deploy.engine_version()
    # The guest's clock, from its RTC and then the channel's `clock`: within a second of the host's.
    t0 = time.time()
    remote = float(guest(host, "date +%s.%N"))
    assert abs(remote - (t0 + time.time()) / 2) < 1.0 + (time.time() - t0) / 2


def test_an_engine_of_another_version_on_the_data_disk_is_replaced_at_boot(host):
    from hostbridge import deploy

    # An older hostbridge's engine: another version, the link pointing at it, no stamp of ours.
    guest(host, "cp %(lib)s/engine-%(v)s.pyz %(lib)s/engine-0.0.1.pyz && ln -sfn engine-0.0.1.pyz %(lib)s/engine.pyz"
                " && rm -f %(lib)s/.engine-offer %(lib)s/engine-%(v)s.pyz" % {"lib": LIB, "v": deploy.engine_version()})
    r = reboot(host)
    assert "[deploy]" not in r.stderr, r.stderr
    assert "engine %s installed from the host" % deploy.engine_version() in serial(host)  # this boot's console
    assert guest(host, "readlink %s/engine.pyz; ls %s/engine-0.0.1.pyz 2>&1 || true" % (LIB, LIB)).startswith(
        "engine-%s.pyz\n" % deploy.engine_version())
    assert "engine-0.0.1.pyz" not in guest(host, "ls %s" % LIB)
    assert engine_version(host) == deploy.engine_version()


def test_a_damaged_engine_is_refused_by_the_guest_and_deployed_over_ssh(host):
    from hostbridge import deploy
    from hostbridge.machines.image import file_stamp

    with open(os.path.join(host.machine_dir(NAME), "engine-offer.json")) as f:
        drive = json.load(f)["drive"]
    # The guest must read the drive again (its stamp says another engine), and the drive is
    # damaged behind the host's back: same size, mtime and inode, so the host's stamp holds.
    guest(host, "echo other > %s/.engine-offer" % LIB)
    assert host.hb("down", "--shutdown", "--machine", NAME, timeout=120).returncode == 0
    stamp, st = file_stamp(drive), os.stat(drive)
    with open(drive, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(drive, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_stamp(drive) == stamp
    try:
        r = host.hb("up", "--machine", NAME, timeout=BOOT)
        assert r.returncode == 0, r.stderr
        assert "engine from the host refused" in serial(host)
        assert "[deploy]" in r.stderr and "corrupt or truncated" in r.stderr, r.stderr  # said, then over SSH
        assert engine_version(host) == deploy.engine_version()
        # The guest kept its engine file: the one on its disk is intact (the copy over SSH agrees).
        assert guest(host, "readlink %s/engine.pyz" % LIB).strip() == "engine-%s.pyz" % deploy.engine_version()
    finally:
        os.remove(drive)  # the next `up` builds it afresh
