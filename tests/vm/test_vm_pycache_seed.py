"""The image's bytecode seed for real: the first machine made from an image compiles the
image's own modules (its stdlib, the init when the image has it not) and the host keeps them,
appended to the initrd it boots; the next new machine's kernel unpacks them, so that its Python
compiles none of them, neither the init's nor the engine's; and a machine suspended before its
image's seed was kept resumes (the boot's command line is the same).

The image is the shared cache's, hard-linked into a cache of this test's own (same image id),
so that the seed starts out absent whatever other runs kept. One machine at a time under TCG.
All traffic goes to 127.0.0.1."""

import os
import shutil

import pytest

from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = pytest.mark.vm
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
FIRST, SECOND = "seeda%d" % (os.getpid() % 10000), "seedb%d" % (os.getpid() % 10000)
IMAGE_PYCACHE = "/usr/lib/hostbridge/pycache"  # assemble.IMAGE_PYCACHE


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from hostbridge.machines import image

    shared = os.path.join(shared_image_cache(), image.cache_key(image.debian_arch()))
    cache = str(tmp_path_factory.mktemp("seedimages"))
    own = os.path.join(cache, os.path.basename(shared))
    os.makedirs(own)
    for name in image.IMAGE_FILES + (image.CHECKED_STAMP,):
        if os.path.exists(os.path.join(shared, name)):
            try:
                os.link(os.path.join(shared, name), os.path.join(own, name))
            except OSError:
                shutil.copy2(os.path.join(shared, name), os.path.join(own, name))
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmseed")), cache)
    h.image_dir = own
    yield h
    for name in (FIRST, SECOND):
        if os.path.exists(os.path.join(h.machine_dir(name), "machine.json")):
            h.hb("destroy", "-f", "--machine", name, timeout=120)


def serial(host, name):
    with open(os.path.join(host.machine_dir(name), "serial.log"), "rb") as f:
        return f.read().decode(errors="replace")


def guest(host, name, cmd):
    return host.hb("ssh", "--machine", name, "--", cmd, check=True).stdout


def up(host, name, *options):
    r = host.hb("up", "--machine", name, *options, timeout=BOOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_the_first_machine_of_an_image_leaves_its_compiled_modules_and_still_resumes(host):
    from hostbridge.machines import image

    assert not image.has_seed(host.image_dir)
    up(host, FIRST, "--driver", "qemu", "--cpus", "2", "--memory", "768", "--disk", "3G")
    assert image.has_seed(host.image_dir), "no seed was kept after the first machine's up"
    files = _seed_names(host)
    assert any(name.endswith("/json/decoder.cpython-311.pyc") or name.endswith("/argparse.cpython-311.pyc")
               for name in files), files[:5]
    assert all(name.startswith(IMAGE_PYCACHE.lstrip("/") + "/") or name.endswith("hostbridge-init.pyc")
               for name in files)  # the image's own: not the engine's
    # The data disk's stdlib tree is the RAM one: the engine's Python compiled there too.
    assert guest(host, FIRST, "readlink /var/cache/hostbridge/pycache/usr/lib/python3.11").strip() == \
        IMAGE_PYCACHE + "/usr/lib/python3.11"
    # Suspended after the seed was kept (its boot's initrd had none): it resumes all the same.
    assert host.hb("down", "--machine", FIRST, timeout=300).returncode == 0
    r = up(host, FIRST)
    assert "resumed" in r.stdout, r.stdout + r.stderr
    assert host.hb("destroy", "-f", "--machine", FIRST, timeout=120).returncode == 0


def test_the_next_new_machine_boots_the_seed_and_compiles_none_of_it(host):
    from hostbridge.machines import image

    if os.path.exists(os.path.join(host.machine_dir(FIRST), "machine.json")):
        host.hb("destroy", "-f", "--machine", FIRST, timeout=120)  # one guest at a time
    if not image.has_seed(host.image_dir):
        pytest.fail("the first test kept no seed")
    up(host, SECOND, "--driver", "qemu", "--cpus", "2", "--memory", "768", "--disk", "3G")
    # The engine answers, and no Python compiled anything of the image's modules in this boot
    # (the seed's files carry the mtime SEED_MTIME; what a guest compiles, its boot's time).
    assert host.hb("--machine", SECOND, "version", timeout=60).returncode == 0
    fresh = guest(host, SECOND, "find %s /usr/lib/hostbridge/hostbridge-init.pyc -name '*.pyc' -mmin -600"
                  % IMAGE_PYCACHE)
    assert fresh == "", fresh
    seeded = guest(host, SECOND, "find %s -name '*.pyc' | wc -l" % IMAGE_PYCACHE)
    assert int(seeded) >= len([n for n in _seed_names(host) if n.startswith(IMAGE_PYCACHE.lstrip("/"))])
    # A warm boot: the same.
    assert host.hb("down", "--shutdown", "--machine", SECOND, timeout=120).returncode == 0
    up(host, SECOND)
    assert guest(host, SECOND, "find %s -name '*.pyc' -mmin -600" % IMAGE_PYCACHE) == ""
    assert host.hb("destroy", "-f", "--machine", SECOND, timeout=120).returncode == 0


def _seed_names(host):
    """The paths (no leading /) in the image's seed: the second archive of its boot initrd."""
    from hostbridge.machines import image
    from hostbridge.machines.guestimage import cpio

    with open(os.path.join(host.image_dir, image.BOOT_INITRD), "rb") as f:
        data = f.read()
    with open(os.path.join(host.image_dir, image.SEED_META)) as f:
        size = __import__("json").load(f)["size"]
    return [e.name for e in cpio.read(data[len(data) - size:]) if e.name.endswith(".pyc")]
