"""A qemu machine's share as a developer relies on it, end to end (TCG here): an edit on the host is
seen by a container's bind mount at its next read, a file the container writes is on the host at
once; and QEMU's memory falls once the containers stop and the guest idles. All traffic goes to
127.0.0.1.
"""

import os
import subprocess
import time

import pytest

from tests.support.hbhome import HostbridgeHome, qemu_guest_ram_mib, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not __import__("shutil").which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "vmshare-%d" % os.getpid()
MEMORY = 1024
IDLE = 100  # s: the guest drops its caches after 30 s idle (looked at every 10 s); reporting them takes ~30 s more


class Host(HostbridgeHome):
    def docker(self, *args, timeout=180):
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True, env=self.docker_env,
                              timeout=timeout)

    def exec(self, *command):
        r = self.docker("exec", "dev", *command)
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    h = Host(str(tmp_path_factory.mktemp("vmshare")), shared_image_cache())
    h.share = os.path.join(h.home, "src")
    os.mkdir(h.share)
    h.up_qemu(NAME, "--cpus", "2", "--memory", str(MEMORY), "--disk", "4G", "--share", h.share, timeout=BOOT)
    h.docker_env = dict(h.env, DOCKER_HOST=h.docker_host(NAME))
    assert h.docker("import", busybox_rootfs_tar, "busybox:latest").returncode == 0
    r = h.docker("run", "-d", "--name", "dev", "-v", "%s:/src" % h.share, "busybox", "sleep", "100000")
    assert r.returncode == 0, r.stderr
    yield h
    h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def test_a_host_edit_is_seen_by_the_container_at_its_next_read(host):
    path = os.path.join(host.share, "app.py")
    with open(path, "w") as f:
        f.write("version 1\n")
    assert host.exec("cat", "/src/app.py") == "version 1\n"
    listing = host.exec("ls", "-l", "/src/app.py")
    time.sleep(1.1)  # a new mtime second, as an editor's save a moment later
    with open(path, "w") as f:  # rewritten in place, longer: size, mtime and content all change
        f.write("version 2, edited on the host\n")
    assert host.exec("cat", "/src/app.py") == "version 2, edited on the host\n"
    assert host.exec("ls", "-l", "/src/app.py") != listing
    os.replace(path, os.path.join(host.share, "moved.py"))
    assert host.exec("ls", "/src").split() == ["moved.py"]  # a rename on the host, as `git checkout` does
    with open(os.path.join(host.share, "new.txt"), "w") as f:
        f.write("fresh")
    assert host.exec("cat", "/src/new.txt") == "fresh"


def test_a_file_the_container_writes_is_on_the_host_at_once(host):
    host.exec("sh", "-c", "echo built > /src/out.txt && mkdir -p /src/dist && echo 1 > /src/dist/a")
    with open(os.path.join(host.share, "out.txt")) as f:
        assert f.read() == "built\n"
    assert os.listdir(os.path.join(host.share, "dist")) == ["a"]
    host.exec("rm", "-r", "/src/dist")
    assert not os.path.exists(os.path.join(host.share, "dist"))


def test_qemu_hands_memory_back_once_the_containers_stop(host):
    with open(os.path.join(host.machine_dir(NAME), "qemu.pid")) as f:
        pid = int(f.read())
    ids = []
    for _ in range(10):
        r = host.docker("run", "-d", "busybox", "sh", "-c", "head -c 4000000 /dev/zero | cat > /dev/null; sleep 100000")
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.strip())
    # Page cache to give back too: 64 MiB written to the data disk (kept: its cache stays until dropped).
    assert host.hb("ssh", "--machine", NAME, "--", "dd if=/dev/urandom of=/var/lib/hostbridge/fill bs=1M count=64 "
                   "2>/dev/null && sync", timeout=300).returncode == 0
    running = qemu_guest_ram_mib(pid, MEMORY)
    assert host.docker("rm", "-f", *ids).returncode == 0
    time.sleep(IDLE)
    after = qemu_guest_ram_mib(pid, MEMORY)
    assert after < running - 32, "guest RAM in QEMU: %.0f MiB with the containers, %.0f MiB after" % (running, after)
