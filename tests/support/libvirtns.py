"""A private libvirtd in a network namespace of its own, for the vagrant-libvirt test.

These machines have no systemd, so nothing runs libvirtd: this starts one and stops it after.
It runs in a network namespace the test creates, so vagrant-libvirt's NAT network
(192.168.121.0/24), its dnsmasq and every VM stay inside it: whatever talks to the VM (vagrant,
hostbridge, its tunnel agent) runs in that namespace too (``exec_prefix``). The daemon has a
mount namespace of its own as well: its config is a private copy of /etc/libvirt (QEMU as root,
no virtlogd: the console goes to a file), its state dirs are tmpfs, and its socket is in the
test's temp dir, which clients reach through vagrant-libvirt's ``socket`` setting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

QEMU_CONF = """
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
"""
STATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")


class LibvirtNS:
    """A libvirtd in network namespace ``netns``, its files under ``base``.

    Args:
        base: a directory of the test's own (config copy, socket, logs).
        netns: the network namespace's name (created by ``start``, deleted by ``stop``).
    """

    def __init__(self, base: str, netns: str):
        self.base, self.netns = base, netns
        self.etc = os.path.join(base, "etc")
        self.sock_dir = os.path.join(base, "sock")
        self.socket = os.path.join(self.sock_dir, "libvirt-sock")
        self.log = os.path.join(base, "libvirtd.log")
        self.uri = "qemu:///system?socket=" + self.socket
        self.proc = None

    @property
    def exec_prefix(self):
        """The argv prefix that runs a command in the namespace."""
        return ["ip", "netns", "exec", self.netns]

    def start(self, timeout=60.0):
        """Create the namespace, start libvirtd in it, wait for its socket.

        Raises:
            RuntimeError: libvirtd exited or did not answer within ``timeout`` s (its log).
        """
        shutil.copytree("/etc/libvirt", self.etc)
        # Debian's "default" network would start too; vagrant-libvirt makes its own.
        for p in ("qemu/networks/autostart/default.xml",):
            if os.path.lexists(os.path.join(self.etc, p)):
                os.remove(os.path.join(self.etc, p))
        with open(os.path.join(self.etc, "qemu.conf"), "a") as f:
            f.write(QEMU_CONF)
        with open(os.path.join(self.etc, "libvirtd.conf"), "a") as f:
            f.write('\nunix_sock_dir = "%s"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n' % self.sock_dir)
        os.makedirs(self.sock_dir)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        script = "set -e; mount --bind \"$1\" /etc/libvirt; for d in %s; do mkdir -p $d; " \
                 "mount -t tmpfs tmpfs $d; done; exec libvirtd --config \"$1/libvirtd.conf\" --pid-file \"$2\"" \
                 % " ".join(STATE_DIRS)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.exec_prefix + ["unshare", "-m", "--propagation", "private", "sh", "-c",
                                                             script, "sh", self.etc,
                                                             os.path.join(self.base, "libvirtd.pid")],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while self.virsh("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("libvirtd did not start: %s" % self.log_tail())
            time.sleep(0.3)

    def virsh(self, *args, check=True, timeout=60):
        """Run ``virsh -c URI ARGS`` (text output)."""
        return subprocess.run(["virsh", "-c", self.uri] + list(args), capture_output=True, text=True, check=check,
                              timeout=timeout)

    def log_tail(self, n=20):
        """The last ``n`` lines of libvirtd's log."""
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """Stop every domain and network (their QEMU and dnsmasq would outlive libvirtd), then
        libvirtd, then delete the namespace. Best effort: each step runs whatever came before."""
        if self.proc is not None and self.proc.poll() is None:
            for name in self.virsh("list", "--name", check=False).stdout.split():
                self.virsh("destroy", name, check=False)
            for name in self.virsh("net-list", "--name", check=False).stdout.split():
                self.virsh("net-destroy", name, check=False)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
