"""A "remote host" for the tunnel tier: a network namespace running Debian's OpenSSH sshd.

The namespace gets one end of a veth pair and a private /30 (10.253.X.0/30) that exists only
between this host and that namespace, so every packet the tests send goes to 127.0.0.1 or to
the namespace. The namespace shares the filesystem with the host: far-side paths live in tmp.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time

SSHD_BIN = "/usr/sbin/sshd"


def _run(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def _free_subnet() -> int:
    used = _run("ip", "-4", "-o", "addr").stdout + _run("ip", "-4", "route").stdout
    for _ in range(200):
        x = random.randrange(0, 256)
        if "10.253.%d." % x not in used:
            return x
    raise RuntimeError("no free 10.253.X.0/30 subnet")


class RemoteNamespace:
    """A netns with a veth link to the host: ``host_ip`` here, ``ip`` inside."""

    def __init__(self):
        tag = "%d%03d" % (os.getpid() % 100000, random.randrange(1000))
        self.name = "hbtun" + tag
        self.veth_host = ("hbh" + tag)[:15]
        self.veth_ns = ("hbn" + tag)[:15]
        x = _free_subnet()
        self.host_ip = "10.253.%d.1" % x
        self.ip = "10.253.%d.2" % x

    def create(self):
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
            _run("ip", "link", "set", self.veth_ns, "netns", self.name)
            _run("ip", "addr", "add", self.host_ip + "/30", "dev", self.veth_host)
            _run("ip", "link", "set", self.veth_host, "up")
            self.exec("ip", "addr", "add", self.ip + "/30", "dev", self.veth_ns)
            self.exec("ip", "link", "set", self.veth_ns, "up")
            self.exec("ip", "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise

    def prefix(self) -> list:
        """A command prefix that runs a program in this host's network namespace, with cgroups.

        `ip netns exec` gives the program a fresh /sys (the namespace's devices), in which
        /sys/fs/cgroup is empty; a real remote host has its cgroups, and the engine refuses to run
        containers without a devices cgroup. So the host's cgroup mounts are made again there
        (the same hierarchies, mounted anew), then the program is exec'd: a Popen's pid is its own.
        """
        return ["ip", "netns", "exec", self.name, "sh", "-c", _cgroup_mounts_script() + 'exec "$@"', "sh"]

    def exec(self, *args, check=True):
        return _run(*(self.prefix() + list(args)), check=check)

    def popen(self, args, **kw):
        return subprocess.Popen(self.prefix() + list(args), **kw)

    def destroy(self):
        _run("ip", "link", "del", self.veth_host, check=False)
        _run("ip", "netns", "del", self.name, check=False)


def _cgroup_mounts_script() -> str:
    """Shell commands that mount this host's cgroup hierarchies again under /sys/fs/cgroup."""
    out = ["set -e"]
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            if mnt == "/sys/fs/cgroup" or mnt.startswith("/sys/fs/cgroup/"):
                if fstype not in ("tmpfs", "cgroup", "cgroup2"):
                    continue
                out.append("mkdir -p %s && mount -t %s -o %s %s %s" % (mnt, fstype, opts, dev, mnt))
    return "; ".join(out) + "; "


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the tests then use the same number far away)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path: str, kind: str = "ed25519") -> str:
    """A fresh passphrase-less key at ``path``; returns the public key line."""
    for p in (path, path + ".pub"):
        if os.path.exists(p):
            os.unlink(p)
    _run("ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "hostbridge-test", "-f", path)
    with open(path + ".pub") as f:
        return f.read().strip()


def fingerprint_of(pub_path: str) -> str:
    out = _run("ssh-keygen", "-l", "-E", "sha256", "-f", pub_path).stdout
    return out.split()[1]


class SSHD:
    """Debian's sshd inside the namespace, with a tmp host key and a test user key for root."""

    def __init__(self, ns: RemoteNamespace, tmp: str, port: int):
        self.ns, self.dir, self.port = ns, tmp, port
        self.host = ns.ip
        self.host_key = os.path.join(tmp, "ssh_host_ed25519_key")
        self.user_key = os.path.join(tmp, "id_test")
        self.authorized_keys = os.path.join(tmp, "authorized_keys")
        self.config = os.path.join(tmp, "sshd_config")
        self.log = os.path.join(tmp, "sshd.log")
        self.proc = None
        keygen(self.host_key)
        with open(self.authorized_keys, "w") as f:
            f.write(keygen(self.user_key) + "\n")
        os.chmod(self.authorized_keys, 0o600)

    @property
    def host_fingerprint(self) -> str:
        return fingerprint_of(self.host_key + ".pub")

    def regenerate_host_key(self):
        keygen(self.host_key)
        self.restart()

    def write_config(self, streamlocal=True, path_env=None):
        with open(self.config, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port, "ListenAddress %s" % self.host, "HostKey %s" % self.host_key,
                "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
                "AuthorizedKeysFile %s" % self.authorized_keys, "StrictModes no", "UsePAM no",
                "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "AllowTcpForwarding yes",
                "AllowStreamLocalForwarding %s" % ("yes" if streamlocal else "no"),
                "Subsystem sftp internal-sftp", "MaxStartups 50", "MaxSessions 50", "LogLevel VERBOSE"]
                + (["SetEnv PATH=%s" % path_env] if path_env else []) + [""]))

    def start(self, streamlocal=True, path_env=None):
        """Start sshd; ``path_env`` sets the sessions' PATH (to hide or add far-side commands)."""
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation dir
        self.write_config(streamlocal, path_env)
        log = open(self.log, "ab")
        self.proc = self.ns.popen([SSHD_BIN, "-D", "-e", "-f", self.config], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: " + open(self.log).read()[-2000:])
            if self._listening():
                return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not listen in 10 s")

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def children(self) -> list:
        """PIDs of the per-connection sshd processes (children of the sshd we started)."""
        if self.proc is None:
            return []
        # `ip netns exec` execs sh, which execs sshd: proc.pid is sshd's own pid.
        out = _run("pgrep", "-P", str(self.proc.pid), check=False).stdout
        return [int(p) for p in out.split()]

    def kill_connections(self):
        for pid in self.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill_connections()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, streamlocal=True, path_env=None):
        self.stop()
        return self.start(streamlocal, path_env)

    def url(self, user="root") -> str:
        return "ssh://%s@%s:%d" % (user, self.host, self.port)
