"""`hostbridge doctor` against the real engine (native mode), each check broken on purpose:
a stopped engine, a route that clashes in a network namespace, a full disk, no keyring, the
docker CLI pointed elsewhere (the stock CLI sets the context)."""

import json
import os
import random
import subprocess
import sys
import tempfile

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.root


def _env(tmp_path, sock, **extra):
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOME=str(tmp_path / "hbhome"),
               HOSTBRIDGE_NATIVE_SOCKET=sock, HOSTBRIDGE_NATIVE_ROOT=str(tmp_path / "root"),
               DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=str(tmp_path / "docker-config"),
               PYTHON_KEYRING_BACKEND="tests.unit.filekeyring.FileKeyring",
               HOSTBRIDGE_TEST_KEYRING=str(tmp_path / "keyring.json"))
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "HOSTBRIDGE_DEBUG", "DOCKER_CONTEXT"):
        env.pop(k, None)
    env.update(extra)
    return env


NO_DNS = ("--dns-image", "hostbridge-doctor-absent:none")  # keeps the DNS check from asking the host's resolvers


def _doctor(env, *args, prefix=()):
    if not any(a.startswith("--dns") for a in args):
        args = args + NO_DNS
    r = subprocess.run(list(prefix) + [sys.executable, "-m", "hostbridge.cli", "doctor"] + list(args), env=env,
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    return r


def _by_name(r):
    assert r.stdout, r.stderr
    return {c["check"]: c for c in json.loads(r.stdout)}


def test_all_green_then_engine_stopped(tmp_path, busybox_rootfs_tar):
    from tests.support.engine import Engine

    eng = Engine(tmp_path / "eng").start()
    try:
        env = _env(tmp_path, eng.sock)
        r = _doctor(env, "--json")
        checks = _by_name(r)
        assert r.returncode == 0, r.stdout
        assert checks["engine"]["ok"] and "answers at unix://%s" % eng.sock in checks["engine"]["figure"]
        assert checks["subnets"]["ok"] and checks["disk"]["ok"] and checks["keyring"]["ok"]
        assert checks["docker CLI"]["ok"] and checks["docker CLI"]["figure"] == "DOCKER_HOST is unix://" + eng.sock
        assert checks["tunnel"]["skipped"] and checks["host key"]["skipped"]
        plain = _doctor(env)
        assert plain.returncode == 0 and plain.stdout.splitlines()[0].startswith("✓ engine ")
    finally:
        eng.stop()
    r = _doctor(env)
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if " engine " in ln)
    assert line.startswith("✗ engine") and "fix: start it with `sudo hostbridge up`" in line


def test_a_route_that_clashes_with_a_container_subnet(tmp_path, engine):
    # The doctor runs in a namespace of the test's own, whose only route is a veth link's
    # inside the engine's default bridge subnet (a VPN's route would look the same).
    import ipaddress

    nets = json.loads(subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
                                     env=dict(os.environ, DOCKER_HOST=engine.url), check=True).stdout)
    subnet = ipaddress.ip_network(nets[0]["IPAM"]["Config"][0]["Subnet"])
    clash = list(subnet.subnets(new_prefix=24))[-1]
    ns = "hbdoc%05d" % random.randrange(100000)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        env = _env(tmp_path, engine.sock)
        inside = ("ip", "netns", "exec", ns)
        checks = _by_name(_doctor(env, "--json", prefix=inside))
        assert checks["subnets"]["ok"], checks["subnets"]
        for cmd in (["ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1"],  # both ends inside
                    ["ip", "addr", "add", "%s/24" % next(clash.hosts()), "dev", "vpn0"],
                    ["ip", "link", "set", "vpn1", "up"], ["ip", "link", "set", "vpn0", "up"]):
            subprocess.run(list(inside) + cmd, check=True)
        r = _doctor(env, "--json", prefix=inside)
        checks = _by_name(r)
        assert r.returncode == 1 and checks["subnets"]["ok"] is False
        fig = checks["subnets"]["figure"]
        assert "network bridge (%s) overlaps the host route %s via vpn0" % (subnet, clash) in fig
        assert "network create --subnet" in checks["subnets"]["fix"]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_full_disk(tmp_path, engine):
    small = tempfile.mkdtemp(prefix="hbdoc-disk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small], check=True)
    try:
        r = _doctor(_env(tmp_path, engine.sock, HOSTBRIDGE_NATIVE_ROOT=small), "--json")
        disk = _by_name(r)["disk"]
        assert r.returncode == 1 and disk["ok"] is False
        assert disk["figure"].startswith("engine state 8 MiB free of 8 MiB") and small in disk["fix"]
    finally:
        subprocess.run(["umount", small], check=True)
        os.rmdir(small)


def test_no_keyring_and_docker_cli_elsewhere(tmp_path, engine):
    env = _env(tmp_path, engine.sock, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
               DOCKER_HOST="unix:///run/elsewhere.sock")
    checks = _by_name(_doctor(env, "--json"))
    assert checks["keyring"]["ok"] is False and "no keyring" in checks["keyring"]["figure"]
    assert checks["docker CLI"]["ok"] is False
    assert "DOCKER_HOST is unix:///run/elsewhere.sock, not this machine's unix://%s" % engine.sock in \
        checks["docker CLI"]["figure"]
    # Without DOCKER_HOST the current docker context counts: the stock CLI selects ours.
    env.pop("DOCKER_HOST")
    checks = _by_name(_doctor(env, "--json"))
    assert checks["docker CLI"]["ok"] is False and "docker context default" in checks["docker CLI"]["figure"]
    made = subprocess.run([sys.executable, "-m", "hostbridge.cli", "context", "create"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert made.returncode == 0, made.stderr
    subprocess.run(["docker", "context", "use", "hostbridge-default"], env=env, check=True, capture_output=True)
    checks = _by_name(_doctor(env, "--json"))
    assert checks["docker CLI"]["ok"], checks["docker CLI"]
    assert checks["docker CLI"]["figure"] == "docker context hostbridge-default points at unix://" + engine.sock


def test_keyring_verdicts():
    import keyring.backends.chainer
    import keyring.backends.fail

    from hostbridge.doctor import keyring_verdict

    assert keyring_verdict(keyring.backends.fail.Keyring())[0] is False
    PlaintextKeyring = type("PlaintextKeyring", (), {"__module__": "keyrings.alt.file"})
    ok, figure = keyring_verdict(PlaintextKeyring())
    assert not ok and "keyrings.alt.file.PlaintextKeyring keeps secrets in a plaintext file" == figure
    Secret = type("Keyring", (), {"__module__": "keyring.backends.SecretService"})
    assert keyring_verdict(Secret()) == (True, "keyring.backends.SecretService.Keyring")


class TinyDNS:
    """A DNS server of the test's own on the engine's bridge gateway (port 53, UDP): A records for
    the names it is given, NXDOMAIN for the rest. Only the test's containers ask it."""

    def __init__(self, ip, records):
        import socket
        import threading

        self.records = records
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket
        import struct

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            qid, = struct.unpack("!H", data[:2])
            i, labels = 12, []
            while i < len(data) and data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
                i += 1 + data[i]
            question = data[12:i + 5]
            qtype, = struct.unpack("!H", data[i + 1:i + 3])
            name = ".".join(labels).lower()
            self.asked.append((name, qtype))
            ip = self.records.get(name)
            if ip and qtype == 1:
                answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(int(x) for x in ip.split("."))
                head = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
            else:  # NXDOMAIN for unknown names; no AAAA records at all (NOERROR, empty)
                head = struct.pack("!HHHHHH", qid, 0x8180 if ip else 0x8183, 1, 0, 0, 0)
                answer = b""
            self.sock.sendto(head + question + answer, peer)

    def stop(self):
        self._stop.set()
        self.sock.close()
        self.thread.join(5)


def test_dns_inside_a_container(tmp_path, engine):
    nets = json.loads(subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
                                     env=dict(os.environ, DOCKER_HOST=engine.url), check=True).stdout)
    gateway = nets[0]["IPAM"]["Config"][0]["Gateway"]
    dns = TinyDNS(gateway, {"doctor.hostbridge.test": "10.9.8.7"})
    env = _env(tmp_path, engine.sock)
    try:
        r = _doctor(env, "--json", "--dns-name", "doctor.hostbridge.test", "--dns-server", gateway)
        check = _by_name(r)["dns"]
        assert check["ok"], check
        assert check["figure"].startswith("doctor.hostbridge.test resolves in a container via %s in " % gateway)
        assert "10.9.8.7" in check["figure"] and ("doctor.hostbridge.test", 1) in dns.asked
        # A name the resolver does not know.
        r = _doctor(env, "--json", "--dns-name", "nothere.hostbridge.test", "--dns-server", gateway)
        check = _by_name(r)["dns"]
        assert r.returncode == 1 and check["ok"] is False
        assert "nothere.hostbridge.test does not resolve in a container via %s" % gateway in check["figure"]
        assert "resolv.conf" in check["fix"]
    finally:
        dns.stop()
    # The resolver gone: the lookup times out, and says so.
    r = _doctor(env, "--json", "--dns-name", "doctor.hostbridge.test", "--dns-server", gateway)
    assert _by_name(r)["dns"]["ok"] is False
    # No container is left behind by the check.
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=hostbridge.doctor"], capture_output=True,
                          text=True, env=dict(os.environ, DOCKER_HOST=engine.url), check=True).stdout
    assert left == ""
