"""Bridges, veths, rules and the port proxy against a network namespace the test creates.

These run without the container runtime: a ``unshare --net sleep`` process stands in for a
container's namespace. All traffic goes to 127.0.0.1 or into that namespace.
"""

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
