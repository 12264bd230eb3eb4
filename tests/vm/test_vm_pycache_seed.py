"""The image's bytecode seed for real: the first machine made from an image compiles the stdlib
modules its engine imports and the host keeps them beside the image; the next new machine's
init unpacks them before its engine starts, so its Python compiles none of them; a warm boot
does not unpack them again; and a machine suspended before its image's seed was kept resumes
(the seed drive was on its command line from the start).

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
PYCACHE = "/var/cache/hostbridge/pycache"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from hostbridge.machines import image

    shared = os.path.join(shared_image_cache(), image.cache_key(image.debian_arch()))
    cache = str(tmp_path_factory.mktemp("seedimages"))
    own = os.path.join(cache, os.path.basename(shared))
    os.makedirs(own)
    for name in image.IMAGE_FILES + (image.BOOT_INITRD, image.CHECKED_STAMP):
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

    assert image.pycache_seed(host.image_dir)[1] == 0
    up(host, FIRST, "--driver", "qemu", "--cpus", "2", "--memory", "768", "--disk", "3G")
    assert "pycache seed: none for this image yet" in serial(host, FIRST)
    assert image.pycache_seed(host.image_dir)[1] > 0, "no seed was kept after the first machine's up"
    files = _seed_names(host)
    assert any(name.endswith("/json/__init__.cpython-311.pyc") for name in files), files[:5]
    assert all(name.startswith("usr/lib/") for name in files)  # the image's own: not the engine's
    # Suspended after the seed was kept (its boot's drive was the empty one): it resumes all the same.
    assert host.hb("down", "--machine", FIRST, timeout=300).returncode == 0
    r = up(host, FIRST)
    assert "resumed" in r.stdout, r.stdout + r.stderr
    assert host.hb("destroy", "-f", "--machine", FIRST, timeout=120).returncode == 0


def test_the_next_new_machine_unpacks_the_seed_and_compiles_none_of_it(host):
    from hostbridge.machines import image

    if os.path.exists(os.path.join(host.machine_dir(FIRST), "machine.json")):
        host.hb("destroy", "-f", "--machine", FIRST, timeout=120)  # one guest at a time
    if image.pycache_seed(host.image_dir)[1] == 0:
        pytest.fail("the first test kept no seed")
    up(host, SECOND, "--driver", "qemu", "--cpus", "2", "--memory", "768", "--disk", "3G")
    console = serial(host, SECOND)
    assert "pycache seed: %d modules unpacked" % len(_seed_names(host)) in console, console[-3000:]
    assert console.index("pycache seed: ") < console.index("engine ready")  # before the engine started
    # The engine answers, and its Python compiled nothing of the image's modules: all were seeded.
    assert host.hb("--machine", SECOND, "version", timeout=60).returncode == 0
    newer = guest(host, SECOND, "cd %s && find usr/lib -name '*.pyc' -newer .seed" % PYCACHE)
    assert newer == "", newer
    # A warm boot reads the stamp only.
    assert host.hb("down", "--shutdown", "--machine", SECOND, timeout=120).returncode == 0
    up(host, SECOND)
    assert "pycache seed" not in serial(host, SECOND)
    assert host.hb("destroy", "-f", "--machine", SECOND, timeout=120).returncode == 0


def _seed_names(host):
    """The paths in the image's seed, as the guest init parses them."""
    from hostbridge.machines import image
    from tests.unit.vm.test_vm_guest_init import load_init

    drive, size, _sha = image.pycache_seed(host.image_dir)
    with open(drive, "rb") as f:
        return [name for name, _data in load_init().parse_seed(f.read()[:size])]
