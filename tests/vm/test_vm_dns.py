"""The guest's DNS follows the host's resolver when it changes (a VPN coming up), in the guest and
in a container: the guest asks QEMU's user net (10.0.2.3), which forwards to the nameserver
of the host's /etc/resolv.conf and reads that file again when it changes (libslirp: stat'ed at
most once a second, re-read when its size or mtime differ).

Neither the machine's real /etc/resolv.conf nor its network is touched: QEMU (the `up`) runs in a
private mount and network namespace (tests/support/tiny_dns.py) where /etc/resolv.conf is a
bind-mounted temp file naming a tiny DNS server on 127.0.0.1; rewritten in place, it names a
second one on 127.0.0.2 with another answer. All traffic stays on that namespace's loopback.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.support.hbhome import REPO, HostbridgeHome, shared_image_cache

pytestmark = [pytest.mark.vm, pytest.mark.skipif(not shutil.which("docker"),
                                                 reason="needs the stock docker CLI (Debian's docker.io)")]
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "vmdns-%d" % os.getpid()
FIRST, SECOND = "192.0.2.1", "192.0.2.2"
FOLLOW = 10  # seconds within which a lookup must see the new resolver
LOOKUP = "python3 -c 'import socket; print(socket.gethostbyname(\"probe.test\"))'"


class Host(HostbridgeHome):
    """hostbridge run inside the DNS servers' namespaces (nsenter), so QEMU's user net sees their
    /etc/resolv.conf and 127.0.0.x; the docker CLI outside (the endpoint is a unix socket)."""

    def __init__(self, home, cache, ns_pid):
        super().__init__(home, cache)
        self.ns_pid = ns_pid

    def hb(self, *args, timeout=120, check=False):
        r = subprocess.run(["nsenter", "-t", str(self.ns_pid), "-m", "-n", "--", sys.executable, "-m",
                            "hostbridge.cli"] + list(args), capture_output=True, text=True, env=self.env,
                           timeout=timeout, cwd=REPO)
        if check:
            assert r.returncode == 0, "hostbridge %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r

    def docker(self, *args, timeout=180):
        script = self.hb("env", "--shell", "bash", NAME, check=True).stdout
        url = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                             capture_output=True, text=True, check=True).stdout
        return subprocess.run(["docker"] + list(args), capture_output=True, text=True,
                              env=dict(self.env, DOCKER_HOST=url), timeout=timeout)


@pytest.fixture(scope="module")
def host(tmp_path_factory, busybox_rootfs_tar):
    base = str(tmp_path_factory.mktemp("vmdns"))
    resolv = os.path.join(base, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\n")
    servers = subprocess.Popen(["unshare", "-m", "-n", "--propagation", "private", "--", sys.executable, "-m",
                                "tests.support.tiny_dns", resolv, "127.0.0.1=" + FIRST, "127.0.0.2=" + SECOND],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert servers.stdout.readline().strip() == "serving", servers.stderr.read()
        h = Host(os.path.join(base, "home"), shared_image_cache(), servers.pid)
        h.resolv = resolv
        r = h.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "2", "--memory", "1024", "--disk", "4G",
                 timeout=BOOT)
        assert r.returncode == 0, r.stdout + r.stderr
        try:
            assert h.docker("import", busybox_rootfs_tar, "busybox:latest").returncode == 0
            yield h
        finally:
            h.hb("destroy", "-f", "--machine", NAME, timeout=120)
    finally:
        servers.kill()
        servers.wait(10)


def _guest_lookup(host):
    r = host.hb("ssh", "--machine", NAME, "--", LOOKUP, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else "failed: " + r.stderr.strip()


def _container_lookup(host):
    r = host.docker("run", "--rm", "busybox", "nslookup", "-type=a", "probe.test")
    return SECOND if SECOND in r.stdout else FIRST if FIRST in r.stdout else "failed: " + r.stdout + r.stderr


def _until(fn, want, timeout):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        seen.append(fn())
        if seen[-1] == want or time.monotonic() > deadline:
            return seen


def test_dns_follows_the_hosts_resolver_in_the_guest_and_in_a_container(host):
    assert _guest_lookup(host) == FIRST
    assert _container_lookup(host) == FIRST
    time.sleep(1.1)  # a rewrite within the same second as the last one keeps the file's mtime
    with open(host.resolv, "r+") as f:  # in place: the bind mount shows this very file
        f.seek(0)
        f.truncate()
        f.write("# a VPN came up\nnameserver 127.0.0.2\n")
    changed = time.monotonic()
    seen = _until(lambda: _guest_lookup(host), SECOND, FOLLOW)
    followed = time.monotonic() - changed
    assert seen[-1] == SECOND, seen
    print("guest lookup followed the new resolver in %.1f s (lookups: %s)" % (followed, seen))
    seen = _until(lambda: _container_lookup(host), SECOND, FOLLOW)
    assert seen[-1] == SECOND, seen
