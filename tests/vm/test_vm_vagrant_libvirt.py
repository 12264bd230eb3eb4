"""`hostbridge up --driver vagrant` end to end, on Vagrant's libvirt provider (VirtualBox cannot
run here): Debian's vagrant and vagrant-libvirt, a libvirtd this test starts, QEMU under TCG.

No box can be downloaded here, so the box is built locally (tests/support/vagrantbox.py: Debian
bookworm with systemd, as debian/bookworm64 is) and added to a private VAGRANT_HOME. libvirtd,
its NAT network (192.168.121.0/24) and the VM live in a network namespace this test creates
(tests/support/libvirtns.py); vagrant and hostbridge (hence its tunnel agent) run in it too, so
every packet to the VM stays there. Only the tunnel's unix socket crosses back: the stock
`docker` CLI runs in the test's own namespace.

One machine goes through its life: up (create, boot, provision/bootstrap.sh under systemd,
deploy, tunnel) → docker run → the shared home → down → up again → destroy.
"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import vagrantbox
from tests.support.hbhome import REPO, HostbridgeHome
from tests.support.libvirtns import LibvirtNS

NEEDED = ("vagrant", "libvirtd", "virsh", "debootstrap", "mke2fs", "qemu-img", "qemu-system-x86_64", "docker", "ip")
pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(not all(shutil.which(t) for t in NEEDED),
                                 reason="needs %s (scripts/install-deps.sh --test)" % ", ".join(NEEDED)),
              # Not from the checkout: its Vagrantfile would make vagrant write a .vagrant/ there.
              pytest.mark.skipif(subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                                                cwd="/").stdout.find("vagrant-libvirt") < 0
                                 if shutil.which("vagrant") else True,
                                 reason="needs the vagrant-libvirt plugin (apt-get install vagrant-libvirt)")]
NAME = "vag"
UP = 1200  # seconds for an `up` that boots Debian with systemd under TCG on a busy 2-core host


class Host(HostbridgeHome):
    """hostbridge (in the libvirt namespace) and docker (outside it) as the user runs them."""

    def __init__(self, home, lv, box, vagrant_home, user_home):
        super().__init__(home, os.path.join(home, "no-image-cache"))
        self.lv, self.user_home = lv, user_home
        self.env.update(HOME=user_home, VAGRANT_HOME=vagrant_home, VAGRANT_CHECKPOINT_DISABLE="1",
                        HOSTBRIDGE_VAGRANT_PROVIDER="libvirt", HOSTBRIDGE_BOX=vagrantbox.BOX_NAME,
                        HOSTBRIDGE_LIBVIRT_DRIVER="qemu", HOSTBRIDGE_LIBVIRT_SOCKET=lv.socket,
                        HOSTBRIDGE_KERNEL=box["kernel"], HOSTBRIDGE_INITRD=box["initrd"],
                        HOSTBRIDGE_CMD_LINE=box["cmd_line"])

    def hb(self, *args, timeout=300, check=False):
        r = subprocess.run(self.lv.exec_prefix + [sys.executable, "-m", "hostbridge.cli"] + list(args),
                           capture_output=True, text=True, env=self.env, timeout=timeout, cwd=REPO)
        if check:
            assert r.returncode == 0, "hostbridge %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r

    def vagrant(self, *args, timeout=300):
        """`vagrant ARGS` in the machine's vagrant dir, in the namespace."""
        return subprocess.run(self.lv.exec_prefix + ["vagrant"] + list(args), capture_output=True, text=True,
                              env=dict(self.env, VAGRANT_DEFAULT_PROVIDER="libvirt"), timeout=timeout,
                              cwd=os.path.join(self.machine_dir(NAME), "vagrant"))

    def docker(self, *args, timeout=300):
        script = self.hb("env", "--shell", "bash", NAME, check=True).stdout
        url = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                             capture_output=True, text=True, check=True).stdout
        assert url.startswith("unix://"), url
        env = dict(self.env, DOCKER_HOST=url)
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True, env=env, timeout=timeout)

    def domains(self):
        return self.lv.virsh("list", "--all", "--name").stdout.split()


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    top = tmp_path_factory.mktemp("vagrant")
    box = vagrantbox.ensure()
    lv = LibvirtNS(str(top / "libvirt"), "hbvagrant-%d" % os.getpid())
    vagrant_home = str(top / "vagrant.d")
    user_home = str(top / "home")
    os.makedirs(user_home)
    try:
        lv.start()
        subprocess.run(["vagrant", "box", "add", "--name", vagrantbox.BOX_NAME, box["box"]], check=True,
                       capture_output=True, env=dict(os.environ, VAGRANT_HOME=vagrant_home,
                                                     VAGRANT_CHECKPOINT_DISABLE="1"), timeout=600)
        h = Host(str(top / "hbhome"), lv, box, vagrant_home, user_home)
        h.busybox = busybox_rootfs_tar
        yield h
        if os.path.exists(os.path.join(h.machine_dir(NAME), "machine.json")):
            h.hb("destroy", "-f", "--machine", NAME, timeout=600)
    finally:
        lv.stop()


def test_up_creates_boots_provisions_and_tunnels(host):
    r = host.hb("-v", "up", "--machine", NAME, "--driver", "vagrant", "--cpus", "2", "--memory", "1024", timeout=UP)
    assert r.returncode == 0, r.stdout + r.stderr + host.lv.log_tail()
    print(r.stdout)  # the stages' timings (pytest -rP shows them)
    assert host.domains() == ["hostbridge-%s-default" % NAME]
    # vagrant ran provision/bootstrap.sh, under systemd: the engine runs as its unit.
    out = host.hb("ssh", "--machine", NAME, "--", "cat /proc/1/comm; systemctl is-active hostbridge; "
                  "id -nG vagrant", check=True).stdout.split()
    assert out[:2] == ["systemd", "active"] and "hostbridge" in out[2:], out
    status = host.hb("status", "--machine", NAME, check=True).stdout
    assert "state:    running" in status and "ssh:      192.168.121." in status, status


def test_host_key_pinned_from_the_guest(host):
    pub = host.vagrant("ssh", "-c", "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    with open(os.path.join(host.machine_dir(NAME), "known_hosts")) as f:
        pinned = [line.split()[1:3] for line in f if line.strip()]
    assert pinned == [pub]


def test_docker_run_through_the_tunnel(host):
    assert host.docker("import", host.busybox, "busybox:latest").returncode == 0
    r = host.docker("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_home_is_shared_at_the_same_path(host):
    folder = os.path.join(host.user_home, "site")
    os.makedirs(folder)
    with open(os.path.join(folder, "index.html"), "w") as f:
        f.write("written on the host\n")
    r = host.docker("run", "--rm", "-v", "%s:/site" % folder, "busybox", "cat", "/site/index.html")
    assert (r.returncode, r.stdout) == (0, "written on the host\n"), r.stderr


def test_down_then_up_again(host):
    host.hb("down", "--shutdown", "--machine", NAME, check=True, timeout=600)
    assert host.lv.virsh("domstate", "hostbridge-%s-default" % NAME).stdout.strip() == "shut off"
    status = host.hb("status", "--machine", NAME)
    assert status.returncode == 1 and "state:    stopped" in status.stdout, status.stdout + status.stderr
    r = host.hb("-v", "up", "--machine", NAME, timeout=UP)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    r = host.docker("run", "--rm", "busybox", "echo", "hi again")  # the image survived on the disk
    assert (r.returncode, r.stdout) == (0, "hi again\n"), r.stderr


def test_destroy_removes_the_domain_and_the_files(host):
    host.hb("destroy", "-f", "--machine", NAME, check=True, timeout=600)
    assert host.domains() == []
    assert not os.path.exists(host.machine_dir(NAME))
