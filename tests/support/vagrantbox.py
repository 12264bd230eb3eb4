"""A local Vagrant box for vagrant-libvirt, built with debootstrap (no box can be downloaded here).

It is what Debian's own ``debian/bookworm64`` box holds for our purposes: Debian bookworm with
systemd, udev, openssh-server, python3, sudo and the ``vagrant`` user with Vagrant's insecure
key, plus what provision/bootstrap.sh would otherwise fetch with apt (the VM has no way out).
The disk is one ext4 file system with no partition table and no bootloader: the Vagrantfile's
libvirt block boots the box's kernel and initrd directly (kept next to the box), the fastest
way under TCG. sshd makes fresh host keys at first boot, so every machine has its own.

Built once as root (debootstrap from Debian's mirror, ~3 min) and cached outside the clone
under ``$HOSTBRIDGE_TEST_CACHE`` (default /var/cache/hostbridge-test), keyed by its inputs.

Run as ``python -m tests.support.vagrantbox`` to build (or find) it and print its paths.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd", "systemd-sysv", "udev", "dbus", "openssh-server", "python3", "sudo", "linux-image-amd64",
            "initramfs-tools", "iproute2", "iptables", "ca-certificates", "kmod", "tini")
DISK_GIB = 4
BOX_NAME = "hostbridge-test/bookworm"
INSECURE_KEY = "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub"
# The kernel command line the Vagrantfile's libvirt block passes (the disk is virtio: vda).
CMD_LINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"

NETWORK = """[Match]
Name=eth0

[Network]
DHCP=yes
"""
# Fresh host keys per machine: the box ships none, sshd makes them before it starts.
SSHD_KEYGEN = """[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
FSTAB = "/dev/vda / ext4 rw,relatime 0 1\n"


def cache_dir():
    """Where test artefacts are cached: ``$HOSTBRIDGE_TEST_CACHE`` or /var/cache/hostbridge-test."""
    return os.environ.get("HOSTBRIDGE_TEST_CACHE") or "/var/cache/hostbridge-test"


def box_key():
    """A hash of everything the box is made of (packages, files written into it, the key)."""
    h = hashlib.sha256(repr((SUITE, MIRROR, PACKAGES, DISK_GIB, NETWORK, SSHD_KEYGEN, FSTAB,
                             inspect.getsource(configure))).encode())
    with open(INSECURE_KEY, "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def box_dir():
    """The cache directory of the box with today's inputs (may not exist yet)."""
    return os.path.join(cache_dir(), "vagrant-box-" + box_key())


def paths(d=None):
    """{"box", "kernel", "initrd", "cmd_line"} of the box in ``d``."""
    d = d or box_dir()
    return {"box": os.path.join(d, "bookworm.box"), "kernel": os.path.join(d, "vmlinuz"),
            "initrd": os.path.join(d, "initrd.img"), "cmd_line": CMD_LINE}


def run(*cmd, **kw):
    """Run ``cmd``; its output goes to our stderr; a failure raises."""
    subprocess.run(list(cmd), check=True, stdout=sys.stderr, **kw)


def configure(root):
    """Turn the debootstrapped tree ``root`` into the box's system (as Debian's box is set up)."""
    def write(rel, text, mode=0o644):
        p = os.path.join(root, rel.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    write("/etc/hostname", "bookworm\n")
    write("/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 bookworm\n")
    write("/etc/fstab", FSTAB)
    write("/etc/systemd/network/50-eth0.network", NETWORK)
    write("/etc/systemd/system/ssh.service.d/keygen.conf", SSHD_KEYGEN)
    write("/etc/sudoers.d/vagrant", "vagrant ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    os.symlink("/lib/systemd/system/systemd-networkd.service",
               os.path.join(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service"))
    for key in os.listdir(os.path.join(root, "etc/ssh")):
        if key.startswith("ssh_host_"):
            os.remove(os.path.join(root, "etc/ssh", key))
    run("chroot", root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", "vagrant")
    ssh = os.path.join(root, "home/vagrant/.ssh")
    os.makedirs(ssh, mode=0o700)
    shutil.copyfile(INSECURE_KEY, os.path.join(ssh, "authorized_keys"))
    os.chmod(os.path.join(ssh, "authorized_keys"), 0o600)
    run("chroot", root, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")
    # No root password, no machine-id: each machine makes its own at first boot.
    with open(os.path.join(root, "etc/machine-id"), "w"):
        pass
    shutil.rmtree(os.path.join(root, "var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(os.path.join(root, "var/cache/apt/archives/partial"))


def build(d):
    """Build the box into directory ``d`` (as root): rootfs → ext4 → qcow2 → box.

    Raises:
        subprocess.CalledProcessError: a tool failed (the partial directory is removed).
    """
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    try:
        run("debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, root, MIRROR)
        configure(root)
        boot = os.path.join(root, "boot")
        kernel = sorted(f for f in os.listdir(boot) if f.startswith("vmlinuz-"))[-1]
        out = paths(tmp)
        shutil.copyfile(os.path.join(boot, kernel), out["kernel"])
        shutil.copyfile(os.path.join(boot, "initrd.img-" + kernel[len("vmlinuz-"):]), out["initrd"])
        raw = os.path.join(tmp, "root.ext4")
        run("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", root, raw, "%dG" % DISK_GIB)
        shutil.rmtree(root)
        img = os.path.join(tmp, "box.img")
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, img)
        os.remove(raw)
        meta = os.path.join(tmp, "metadata.json")
        with open(meta, "w") as f:
            json.dump({"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GIB}, f)
        with tarfile.open(out["box"], "w") as tar:
            tar.add(meta, "metadata.json")
            tar.add(img, "box.img")
        os.remove(img)
        os.remove(meta)
        os.replace(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure():
    """The box's paths, building it first when the cache has none for today's inputs."""
    d = box_dir()
    if not all(os.path.exists(p) for k, p in paths(d).items() if k != "cmd_line"):
        os.makedirs(cache_dir(), exist_ok=True)
        build(d)
    return paths(d)


if __name__ == "__main__":
    print(json.dumps(ensure(), indent=1))
