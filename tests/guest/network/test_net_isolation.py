"""Isolation between networks, --internal and enable_icc=false, through the engine and the docker CLI.

Traffic goes only to the containers these tests create and to an "outside" network namespace the
test creates itself (standing in for the world beyond the host). Every probe is one ``nc -w 2``.
"""

import subprocess
import time

import pytest

from hostbridge.guest.network import ipam, netdev
from tests.guest.network.netutil import dk, inspect, ruleset, wait_bound

pytestmark = pytest.mark.root
OUT_SUBNET, OUT_GW, OUT_IP = "10.231.19.0/24", "10.231.19.1", "10.231.19.2"


def _ip(env, name, net):
    return inspect(env, name)["NetworkSettings"]["Networks"][net]["IPAddress"]


def _fetch(env, container, ip):
    """The body of ``http://ip/hostname`` fetched from inside ``container``; "" when unreachable."""
    r = dk(env, "exec", container, "sh", "-c",
           "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 %s 80" % ip, check=False, timeout=30)
    lines = r.stdout.strip().splitlines()
    return lines[-1] if lines and lines[0].startswith("HTTP/") else ""


def _httpd(env, name, *net_args):
    dk(env, "run", "-d", "--name", name, *net_args, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
    return inspect(env, name)["Config"]["Hostname"]


@pytest.fixture
def outside(tmp_path):
    """An HTTP server in a network namespace of the test's own, routed from the host (not by us).

    Yields its address; its /hostname says "outside".
    """
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hostname").write_text("outside\n")
    ns = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    bridge, veth = "hbout%d" % (ns.pid % 10000), "vhout%d" % (ns.pid % 10000)
    srv = None
    try:
        time.sleep(0.1)
        netdev.ensure_bridge(bridge, OUT_GW, 24)
        netdev.plumb(ns.pid, bridge, veth, "eth0", OUT_IP, 24, ipam.mac_for(OUT_IP), OUT_GW)
        srv = subprocess.Popen(["nsenter", "-t", str(ns.pid), "-n", "busybox", "httpd", "-f", "-p", "80",
                                "-h", str(tmp_path / "www")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_bound(ns.pid, 80)
        yield OUT_IP
    finally:
        for p in (srv, ns):
            if p:
                p.kill()
                p.wait()
        netdev.delete_link(veth)
        netdev.delete_link(bridge)


def test_networks_are_isolated_from_each_other(docker_env, cleanup):
    cleanup["networks"] += ["iso-a", "iso-b"]
    cleanup["containers"] += ["iso-a1", "iso-a2", "iso-b1", "iso-dual"]
    dk(docker_env, "network", "create", "iso-a")
    dk(docker_env, "network", "create", "iso-b")
    a1 = _httpd(docker_env, "iso-a1", "--network", "iso-a")
    b1 = _httpd(docker_env, "iso-b1", "--network", "iso-b")
    dk(docker_env, "run", "-d", "--name", "iso-a2", "--network", "iso-a", "busybox", "sleep", "120")
    dk(docker_env, "create", "--name", "iso-dual", "--network", "iso-a", "busybox", "sleep", "120")
    dk(docker_env, "network", "connect", "iso-b", "iso-dual")
    dk(docker_env, "start", "iso-dual")
    ip_a1, ip_b1 = _ip(docker_env, "iso-a1", "iso-a"), _ip(docker_env, "iso-b1", "iso-b")

    assert _fetch(docker_env, "iso-a2", ip_a1) == a1  # same network
    assert _fetch(docker_env, "iso-a2", ip_b1) == ""  # A -> B
    assert _fetch(docker_env, "iso-b1", ip_a1) == ""  # B -> A
    assert _fetch(docker_env, "iso-dual", ip_a1) == a1  # on both: reaches both
    assert _fetch(docker_env, "iso-dual", ip_b1) == b1
    # B reaches the dual-homed container on its B address only, as with dockerd
    dk(docker_env, "exec", "-d", "iso-dual", "httpd", "-p", "80", "-h", "/etc")
    dual = inspect(docker_env, "iso-dual")["Config"]["Hostname"]
    assert _retry(lambda: _fetch(docker_env, "iso-b1", _ip(docker_env, "iso-dual", "iso-b"))) == dual
    assert _fetch(docker_env, "iso-b1", _ip(docker_env, "iso-dual", "iso-a")) == ""

    bridge_a = "br-" + inspect(docker_env, "iso-a1")["NetworkSettings"]["Networks"]["iso-a"]["NetworkID"][:12]
    assert "-i %s ! -o %s -j" % (bridge_a, bridge_a) in ruleset()
    for c in ("iso-a1", "iso-a2", "iso-dual"):
        dk(docker_env, "rm", "-f", c)
    dk(docker_env, "network", "rm", "iso-a")
    assert bridge_a not in ruleset()  # its isolation rules went with it


def _retry(probe, attempts=10):
    """``probe()`` until it answers something (a server started by exec -d may not listen yet)."""
    for _ in range(attempts):
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    return ""


def test_default_bridge_is_isolated_and_reaches_outside(docker_env, cleanup, outside):
    cleanup["networks"].append("iso-c")
    cleanup["containers"] += ["iso-def", "iso-c1"]
    dk(docker_env, "network", "create", "iso-c")
    _httpd(docker_env, "iso-c1", "--network", "iso-c")
    dk(docker_env, "run", "-d", "--name", "iso-def", "busybox", "sleep", "120")
    assert _fetch(docker_env, "iso-def", outside) == "outside"  # NAT out of the default bridge
    assert _fetch(docker_env, "iso-c1", outside) == "outside"  # and out of a user network
    assert _fetch(docker_env, "iso-def", _ip(docker_env, "iso-c1", "iso-c")) == ""


def test_internal_network_has_no_way_out(docker_env, cleanup, outside):
    cleanup["networks"] += ["iso-int", "iso-ext"]
    cleanup["containers"] += ["iso-i1", "iso-i2", "iso-e1", "iso-both"]
    dk(docker_env, "network", "create", "--internal", "iso-int")
    dk(docker_env, "network", "create", "iso-ext")
    i1 = _httpd(docker_env, "iso-i1", "--network", "iso-int")
    dk(docker_env, "run", "-d", "--name", "iso-i2", "--network", "iso-int", "busybox", "sleep", "120")
    dk(docker_env, "run", "-d", "--name", "iso-e1", "--network", "iso-ext", "busybox", "sleep", "120")
    ip_i1 = _ip(docker_env, "iso-i1", "iso-int")

    assert _fetch(docker_env, "iso-e1", outside) == "outside"  # the way out exists for others
    assert _fetch(docker_env, "iso-i2", ip_i1) == i1  # inside the internal network: fine
    assert _fetch(docker_env, "iso-i2", outside) == ""  # no way out
    assert _fetch(docker_env, "iso-e1", ip_i1) == ""  # no way in
    assert "default" not in dk(docker_env, "exec", "iso-i2", "ip", "route").stdout
    ep = inspect(docker_env, "iso-i2")["NetworkSettings"]["Networks"]["iso-int"]
    assert ep["Gateway"] == "" and ep["IPAddress"]
    # with the internal network first, a second network still gives the container its way out
    dk(docker_env, "create", "--name", "iso-both", "--network", "iso-int", "busybox", "sleep", "120")
    dk(docker_env, "network", "connect", "iso-ext", "iso-both")
    dk(docker_env, "start", "iso-both")
    assert _fetch(docker_env, "iso-both", outside) == "outside"
    assert _fetch(docker_env, "iso-both", ip_i1) == i1


def test_icc_false_keeps_containers_of_a_network_apart(docker_env, cleanup, outside):
    cleanup["networks"].append("iso-noicc")
    cleanup["containers"] += ["iso-n1", "iso-n2"]
    dk(docker_env, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "iso-noicc")
    host = _httpd(docker_env, "iso-n1", "--network", "iso-noicc")
    dk(docker_env, "run", "-d", "--name", "iso-n2", "--network", "iso-noicc", "busybox", "sleep", "120")
    ip = _ip(docker_env, "iso-n1", "iso-noicc")
    # the positive control: the server is up and answers on that address (from itself)
    deadline = time.monotonic() + 20
    while _fetch(docker_env, "iso-n1", ip) != host and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _fetch(docker_env, "iso-n1", ip) == host
    assert _fetch(docker_env, "iso-n2", ip) == ""
    assert _fetch(docker_env, "iso-n2", outside) == "outside"
    bad = dk(docker_env, "network", "create", "-o", "com.docker.network.bridge.enable_icc=maybe", "iso-bad",
             check=False)
    assert bad.returncode != 0 and "enable_icc" in bad.stderr

