"""The QEMU guest as a macOS user meets it: no root, a PATH holding only python3, hostbridge,
docker, qemu-system-x86_64 and qemu-img, an empty image cache.

`up` assembles the guest from Debian's verified .deb files (a copy of the shared verified
package cache, filled once from Debian's servers; the index is re-checked against the
mirror), boots it, and the stock docker CLI runs a container through the tunnel; then `down`,
a warm `up` that keeps the data disk, a bind mount of a file under the user's home, a corrupt
cached initrd that the next `up` rebuilds, and `destroy`. Traffic: 127.0.0.1, and Debian's
package servers for the packages.
"""

import glob
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from tests.support.hbhome import REPO

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the test as another user"),
              pytest.mark.skipif(not shutil.which("docker"), reason="needs the stock docker CLI")]
BOOT = 900  # a cold `up` (assembly + boot under TCG on a busy 2-core host)
USER = "nobody"


def guest_debs_cache():
    """The shared verified cache of the guest's .deb files (filled once from Debian's servers)."""
    from hostbridge.machines import image
    from hostbridge.machines.debian import archive
    from hostbridge.machines.guestimage import assemble
    from tests.support.debmirror import test_cache_dir

    cache = os.path.join(test_cache_dir(), "guest-debian")
    names = list(assemble.PROGRAMS) + list(assemble.PICKS) + [assemble.KERNEL_META]
    archive.fetch_packages(names, image.debian_arch(), cache_dir=cache, exclude=assemble.EXCLUDE_PACKAGES)
    return cache


class User:
    """Commands run as ``nobody`` with a home, PATH and caches of its own."""

    def __init__(self, base, debian_cache, busybox_tar):
        self.pw = pwd.getpwnam(USER)
        self.home = os.path.join(base, "home")
        self.bin = os.path.join(base, "bin")
        os.makedirs(self.bin)
        # The checkout's hostbridge on the system's python3: the .venv's own interpreter may live
        # where another user cannot run it (pyenv under /root); its packages are on PYTHONPATH.
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
        with open(os.path.join(self.bin, "hostbridge"), "w") as f:
            f.write("#!%s\nimport sys\nfrom hostbridge.cli import main\nsys.exit(main())\n" % python)
        os.chmod(os.path.join(self.bin, "hostbridge"), 0o755)
        site = glob.glob(os.path.join(REPO, ".venv", "lib", "python3*", "site-packages"))
        for name, target in (("python3", python),
                             ("docker", shutil.which("docker")),
                             ("qemu-system-x86_64", shutil.which("qemu-system-x86_64")),
                             ("qemu-img", shutil.which("qemu-img"))):
            os.symlink(target, os.path.join(self.bin, name))
        shutil.copytree(debian_cache, os.path.join(self.home, ".cache", "hostbridge", "debian"))
        self.busybox = os.path.join(self.home, "busybox.tar")
        shutil.copy(busybox_tar, self.busybox)
        for root, dirs, files in os.walk(base):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.lchown(name, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(base, 0o755)
        self.env = {"HOME": self.home, "PATH": self.bin, "LANG": "C.UTF-8", "USER": USER, "DOCKER_CLI_HINTS": "false",
                    "PYTHONPATH": os.pathsep.join([REPO] + site)}

    def run(self, *argv, timeout=300, env=None):
        cmd = [shutil.which("setpriv"), "--reuid=%d" % self.pw.pw_uid, "--regid=%d" % self.pw.pw_gid, "--clear-groups", "--"]
        return subprocess.run(cmd + list(argv), capture_output=True, text=True, env=env or self.env,
                              timeout=timeout, cwd=self.home)

    def hb(self, *args, timeout=300):
        return self.run(os.path.join(self.bin, "hostbridge"), *args, timeout=timeout)

    def docker(self, *args, timeout=300):
        env = self.run(os.path.join(self.bin, "hostbridge"), "env", "--shell", "bash", "g").stdout
        host = [line.split("=", 1)[1].strip().strip('"').strip("'") for line in env.splitlines()
                if "DOCKER_HOST=" in line][0]
        return self.run(os.path.join(self.bin, "docker"), *args, timeout=timeout, env=dict(self.env, DOCKER_HOST=host))

    def image_cache(self):
        return os.path.join(self.home, ".cache", "hostbridge", "images")


@pytest.fixture(scope="module")
def user(busybox_rootfs_tar):
    import requests

    from hostbridge.errors import ArchiveError

    try:
        debian = guest_debs_cache()
    except (ArchiveError, requests.RequestException) as e:
        pytest.skip("cannot fill the verified cache of the guest's packages (%s)" % e)
    base = tempfile.mkdtemp(prefix="hb-nonroot-")
    u = User(base, debian, busybox_rootfs_tar)
    yield u
    u.hb("destroy", "-f", "--machine", "g", timeout=120)
    shutil.rmtree(base, ignore_errors=True)


def test_up_from_an_empty_cache_as_a_user_then_docker_run_shows_the_guest_kernel(user):
    assert not os.path.exists(user.image_cache())
    r = user.hb("up", "--machine", "g", "--driver", "qemu", "--memory", "1024", "--disk", "4G", timeout=BOOT)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(user.home, ".local", "share", "hostbridge", "machines", "g", "machine.json")) as f:
        image_dir = json.load(f)["image_dir"]
    with open(os.path.join(image_dir, "manifest.json")) as f:
        release = json.load(f)["kernel_release"]
    assert user.docker("import", user.busybox, "busybox:latest").returncode == 0
    r = user.docker("run", "--rm", "busybox", "uname", "-r")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == release


def test_a_file_under_the_users_home_is_bind_mounted(user):
    note = os.path.join(user.home, "note.txt")
    with open(note, "w") as f:
        f.write("from the host\n")
    os.chown(note, user.pw.pw_uid, user.pw.pw_gid)
    r = user.docker("run", "--rm", "-v", "%s:/note.txt" % note, "busybox", "cat", "/note.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from the host\n"


def test_down_then_warm_up_keeps_the_data_disk(user):
    r = user.hb("down", "--machine", "g")
    assert r.returncode == 0, r.stderr
    r = user.hb("up", "--machine", "g", timeout=BOOT)
    assert r.returncode == 0, r.stdout + r.stderr
    r = user.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert r.stdout.split() == ["busybox:latest"]  # images live on the data disk, not in the RAM system


def test_a_corrupt_cached_initrd_is_rebuilt_by_the_next_up(user):
    assert user.hb("down", "--shutdown", "--machine", "g").returncode == 0
    with open(os.path.join(user.home, ".local", "share", "hostbridge", "machines", "g", "machine.json")) as f:
        image_dir = json.load(f)["image_dir"]
    initrd = os.path.join(image_dir, "initrd.img")
    with open(initrd, "r+b") as f:
        f.truncate(20)  # the 20-byte initrd
    r = user.hb("up", "--machine", "g", timeout=BOOT)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(image_dir, "manifest.json")) as f:
        want = json.load(f)["parts"]["initrd.img"]["sha256"]
    with open(initrd, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == want
    assert user.docker("run", "--rm", "busybox", "true").returncode == 0


def test_destroy_removes_the_machine(user):
    r = user.hb("destroy", "-f", "--machine", "g")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(user.home, ".local", "share", "hostbridge", "machines", "g"))
