"""Bridges, veths, rules and the port proxy against a network namespace the test creates.

These run without the container runtime: a ``unshare --net sleep`` process stands in for a
container's namespace. All traffic goes to 127.0.0.1 or into that namespace.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest

from hostbridge.guest.errors import Conflict
from hostbridge.guest.network import ipam, netdev
from hostbridge.guest.network.firewall import Firewall, NetRule, PortRule
from hostbridge.guest.network.proxy import Proxy
from tests.guest.network.netutil import udp_echo, wait_bound

pytestmark = pytest.mark.root
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
SUBNET, GW, IP = "10.231.7.0/24", "10.231.7.1", "10.231.7.2"


def test_the_boot_record_spares_the_read_only_when_no_jump_can_be_there(netns, tmp_path, monkeypatch):
    _, bridge, _, _ = netns
    prefix, record = "HBTEST-%s" % bridge[-4:], str(tmp_path / "firewall-boot")
    try:
        Firewall(prefix, record=record).apply([NetRule(bridge, SUBNET)], [])
        with open("/proc/sys/kernel/random/boot_id") as f:
            assert open(record).read() == f.read().strip()
        Firewall(prefix, record=record).apply([NetRule(bridge, SUBNET)], [])  # after a crash: read, no double
        assert sum(1 for r in Firewall(prefix).chains() if r.startswith("-A FORWARD ")) == 1
        Firewall(prefix, record=record).clear()
        assert not os.path.exists(record) and Firewall(prefix).chains() == []

        def no_read(self):
            raise AssertionError("the rules were read although no jump of ours can be there")
        monkeypatch.setattr(Firewall, "_saved", no_read)
        Firewall(prefix, record=record).apply([NetRule(bridge, SUBNET)], [])  # after a clean stop: no read
        monkeypatch.undo()
        assert sum(1 for r in Firewall(prefix).chains() if r.startswith("-A FORWARD ")) == 1
    finally:
        monkeypatch.undo()
        Firewall(prefix, record=record).clear()
    assert Firewall(prefix).chains() == []


@pytest.fixture
def netns():
    """A process in a fresh network namespace, plumbed onto a test bridge; all removed after."""
    p = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    bridge, veth = "hbtest%d" % (p.pid % 10000), "vhtest%d" % (p.pid % 10000)
    procs = []
    try:
        time.sleep(0.1)
        netdev.ensure_bridge(bridge, GW, 24)
        netdev.plumb(p.pid, bridge, veth, "eth0", IP, 24, ipam.mac_for(IP), GW)
        yield p.pid, bridge, veth, procs
    finally:
        for q in procs:
            q.kill()
            q.wait()
        p.kill()
        p.wait()
        netdev.delete_link(veth)
        netdev.delete_link(bridge)


def _serve(pid, procs, *argv):
    q = subprocess.Popen(["nsenter", "-t", str(pid), "-n", BUSYBOX] + list(argv),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(q)
    return q


def test_veth_in_namespace(netns):
    pid, bridge, veth, _ = netns
    assert netdev.links_in(pid) == ["lo", "eth0"]
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "addr", "show", "eth0"],
                         capture_output=True, text=True).stdout
    assert "%s/24" % IP in out
    link = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show", "eth0"],
                          capture_output=True, text=True).stdout
    assert ipam.mac_for(IP) in link
    route = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "route", "show", "default"],
                           capture_output=True, text=True).stdout
    assert "via %s" % GW in route
    ping = subprocess.run([BUSYBOX, "ping", "-c", "1", "-W", "2", IP], capture_output=True, text=True, timeout=10)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_tcp_proxy_through_loopback(netns):
    pid, _, _, procs = netns
    _serve(pid, procs, "nc", "-l", "-p", "8080", "-e", "cat")
    wait_bound(pid, 8080)
    px = Proxy("tcp", "127.0.0.1", 0, IP, 8080).start()
    try:
        with socket.create_connection(("127.0.0.1", px.host_port), timeout=5) as s:
            payload = b"x" * 300000
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        assert got == payload
    finally:
        px.close()


def test_udp_proxy_through_loopback(netns):
    pid, _, _, procs = netns
    procs.append(udp_echo(pid, 5353))
    px = Proxy("udp", "127.0.0.1", 0, IP, 5353).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"ping\n", ("127.0.0.1", px.host_port))
            data, _ = s.recvfrom(100)
        assert data == b"ping\n"
    finally:
        px.close()


def test_port_in_use_is_a_conflict():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        with pytest.raises(Conflict, match="port is already allocated"):
            Proxy("tcp", "127.0.0.1", holder.getsockname()[1], "10.0.0.2", 80)
    finally:
        holder.close()


def test_rules_applied_then_gone(netns):
    _, bridge, _, _ = netns
    fw = Firewall("HBTEST-%s" % bridge[-4:])
    try:
        fw.apply([NetRule(bridge, SUBNET)], [PortRule("tcp", "0.0.0.0", 18080, IP, 8080, bridge)])
        fw.apply([NetRule(bridge, SUBNET)], [PortRule("tcp", "0.0.0.0", 18080, IP, 8080, bridge)])  # idempotent
        rules = fw.chains()
        assert any("MASQUERADE" in r and SUBNET in r for r in rules)
        assert sum(1 for r in rules if r.startswith("-A FORWARD ")) == 1
        assert any("--to-destination %s:8080" % IP in r for r in rules)
    finally:
        fw.clear()
    assert fw.chains() == []


def test_a_restarted_engine_adds_no_second_jump_and_clear_removes_doubles(netns):
    _, bridge, _, _ = netns
    prefix = "HBTEST-%s" % bridge[-4:]
    try:
        Firewall(prefix).apply([NetRule(bridge, SUBNET)], [])
        Firewall(prefix).apply([NetRule(bridge, SUBNET)], [])  # the next engine: one save, jumps already there
        assert sum(1 for r in Firewall(prefix).chains() if r.startswith("-A FORWARD ")) == 1
        subprocess.run(["iptables", "-w", "-I", "FORWARD", "1", "-j", prefix + "-FORWARD"], check=True)  # a crash's double
    finally:
        Firewall(prefix).clear()
    assert Firewall(prefix).chains() == []


@pytest.fixture
def three_ns():
    """Namespaces a1, a2 on one bridge (isolated ports) and b1 on another; all removed after.

    Yields ``{name: (pid, ip)}`` and the two bridges with their subnets.
    """
    tag = "%d" % (time.monotonic_ns() % 10000)
    nets = {"a": ("hbisa" + tag, "10.231.23.0/24", "10.231.23.1"), "b": ("hbisb" + tag, "10.231.24.0/24", "10.231.24.1")}
    members = {"a1": ("a", "10.231.23.2", True), "a2": ("a", "10.231.23.3", True), "b1": ("b", "10.231.24.2", False)}
    procs, veths = {}, []
    try:
        for bridge, _, gw in nets.values():
            netdev.ensure_bridge(bridge, gw, 24)
        for name, (net, ip, isolated) in members.items():
            p = subprocess.Popen(["unshare", "--net", "sleep", "120"])
            procs[name] = p
            time.sleep(0.1)
            veth = "vhis%s%s" % (name, tag)
            veths.append(veth)
            netdev.plumb(p.pid, nets[net][0], veth, "eth0", ip, 24, ipam.mac_for(ip), nets[net][2], isolated=isolated)
        yield {n: (procs[n].pid, members[n][1]) for n in members}, nets
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        for dev in veths + [b for b, _, _ in nets.values()]:
            netdev.delete_link(dev)


def _pings(ns, src, dst):
    """One ping (1 s at most) from namespace ``src`` to namespace ``dst``'s address."""
    r = subprocess.run(["nsenter", "-t", str(ns[src][0]), "-n", BUSYBOX, "ping", "-c", "1", "-W", "1", ns[dst][1]],
                       capture_output=True, timeout=10)
    return r.returncode == 0


@pytest.mark.parametrize("backend", ["iptables", "nft"])
def test_isolation_with_each_backend(three_ns, backend):
    assert shutil.which(backend), "install-deps.sh installs %s" % backend
    ns, nets = three_ns
    bridge_a, subnet_a, _ = nets["a"]
    bridge_b, subnet_b, _ = nets["b"]
    fw = Firewall("HBISO-%s" % bridge_a[-4:], backend=backend)
    try:
        fw.apply([NetRule(bridge_a, subnet_a), NetRule(bridge_b, subnet_b)], [])
        assert _pings(ns, "a1", "a1") and not _pings(ns, "a1", "b1") and not _pings(ns, "b1", "a1")
        assert not _pings(ns, "a1", "a2")  # isolated ports (enable_icc=false): the bridge itself drops
        fw.apply([NetRule(bridge_a, subnet_a), NetRule(bridge_b, subnet_b, internal=True)], [])
        assert not _pings(ns, "a1", "b1") and not _pings(ns, "b1", "a1")
        fw.clear()
        assert fw.chains() == []
        assert _pings(ns, "a1", "b1") and _pings(ns, "b1", "a1")  # without our rules: plainly routed
    finally:
        fw.clear()
    assert fw.chains() == []
