"""IPv6 with the stock docker CLI, against hostbridge and against dockerd 20.10 (issue 14).

Each test runs once per ``backend`` and asserts what dockerd does. Traffic goes only to ::1 and
between containers on a bridge the test created; the ULA subnets are random per test, so that
dockerd's and hostbridge's bridges never carry the same prefix.
"""

import json
import random
import re
import socket
import time
import uuid

import pytest

pytestmark = pytest.mark.root


def _name(prefix):
    return "hb14-%s-%s" % (prefix, uuid.uuid4().hex[:8])


def _ula():
    """A random ULA /64 prefix without its length, canonical (no leading zeros): ``fdXX:X:X::``."""
    return "fd%02x:%x:%x::" % (random.randrange(256), random.randrange(1, 1 << 16), random.randrange(1, 1 << 16))


def _ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def v6net(backend):
    """An ``--ipv6`` network on a random ULA /64: yields ``(name, prefix)``; removed afterwards."""
    name, prefix = _name("v6"), _ula()
    _ok(backend.docker("network", "create", "--ipv6", "--subnet", prefix + "/64", name))
    yield name, prefix
    ids = backend.docker("ps", "-aq", "--filter", "network=" + name).stdout.split()
    if ids:
        backend.docker("rm", "-f", *ids)
    backend.docker("network", "rm", name)


def _inspect(backend, *args):
    return json.loads(_ok(backend.docker(*args)))[0]


def test_ipv6_network_lists_its_ula_subnet_after_the_ipv4_one(backend, v6net):
    name, prefix = v6net
    net = _inspect(backend, "network", "inspect", name)
    assert net["EnableIPv6"] is True
    v4, v6 = net["IPAM"]["Config"]
    assert sorted(v4) == ["Gateway", "Subnet"] and ":" not in v4["Subnet"]
    assert v6 == {"Subnet": prefix + "/64"}  # dockerd shows no gateway it was not given
    out = _ok(backend.docker("network", "ls", "--filter", "name=" + name, "--format", "{{.Name}} {{.IPv6}}"))
    assert out == "%s true" % name


def test_containers_get_ipv6_addresses_and_reach_each_other(backend, v6net):
    name, prefix = v6net
    a, b = _name("a"), _name("b")
    _ok(backend.docker("run", "-d", "--name", a, "--network", name, "busybox", "sleep", "120"))
    _ok(backend.docker("run", "-d", "--name", b, "--network", name, "--ip6", prefix + "99", "busybox", "sleep", "120"))
    ep = _inspect(backend, "inspect", a)["NetworkSettings"]["Networks"][name]
    assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == (prefix + "2", 64, prefix + "1")
    ep = _inspect(backend, "inspect", b)["NetworkSettings"]["Networks"][name]
    assert ep["IPAMConfig"] == {"IPv6Address": prefix + "99"}
    assert ep["GlobalIPv6Address"] == prefix + "99"
    members = {m["Name"]: m["IPv6Address"] for m in _inspect(backend, "network", "inspect", name)["Containers"].values()}
    assert members == {a: prefix + "2/64", b: prefix + "99/64"}
    addrs = _ok(backend.docker("exec", a, "ip", "-6", "addr", "show", "dev", "eth0"))
    assert prefix + "2/64" in addrs
    assert "default via %s1 " % prefix in _ok(backend.docker("exec", a, "ip", "-6", "route"))
    _ok(backend.docker("exec", b, "ping", "-c", "1", "-W", "5", prefix + "2"))
    _ok(backend.docker("restart", "-t", "0", a))
    assert _inspect(backend, "inspect", a)["NetworkSettings"]["Networks"][name]["GlobalIPv6Address"] == prefix + "2"
    # the address is kept by the container: --ip6 taken again is refused as dockerd refuses it
    r = backend.docker("run", "--rm", "--network", name, "--ip6", prefix + "99", "busybox", "true")
    assert r.returncode == 125 and "Address already in use" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--ipv6"], "could not find an available, non-overlapping IPv6 address pool among the defaults"),
    (["--ipv6", "--subnet", "SUB1", "--subnet", "SUB2"], "bridge driver doesn't support multiple subnets"),
])
def test_ipv6_network_create_errors(backend, args, message):
    args = [a.replace("SUB1", _ula() + "/64").replace("SUB2", _ula() + "/64") for a in args]
    r = backend.docker("network", "create", *args, _name("bad6"))
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_ipv6_subnet_overlap_is_refused(backend, v6net):
    _, prefix = v6net
    r = backend.docker("network", "create", "--ipv6", "--subnet", prefix + "/80", _name("ovl6"))
    assert r.returncode == 1 and "Pool overlaps with other one on this address space" in r.stderr, r.stderr


@pytest.mark.parametrize("ip6,message", [
    ("fd00:dead:beef::9", "It does not belong to any of this network's subnets"),
    ("zz", "invalid IPv6 address: zz"),
])
def test_bad_ip6_is_refused(backend, v6net, ip6, message):
    r = backend.docker("run", "--rm", "--network", v6net[0], "--ip6", ip6, "busybox", "true")
    assert r.returncode == 125 and message in r.stderr, r.stderr


def _mask_ports(text):
    return re.sub(r":\d+$", ":N", text, flags=re.M)


def _read_banner(port, limit=20.0):
    """Connect to [::1]:port until the container's listener answers; its first line."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.create_connection(("::1", port), timeout=5) as s:
                data = s.recv(100)
            if data:
                return data
        except OSError:
            pass
        if time.monotonic() > deadline:
            return b""
        time.sleep(0.3)


@pytest.mark.parametrize("ipv6_network", [True, False])
def test_ports_publish_on_both_families_and_on_loopback6(backend, ipv6_network, request):
    network = request.getfixturevalue("v6net")[0] if ipv6_network else "hb14-v4-" + uuid.uuid4().hex[:6]
    if not ipv6_network:
        _ok(backend.docker("network", "create", network))
        request.addfinalizer(lambda: backend.docker("network", "rm", network))
    c = _name("p6")
    _ok(backend.docker("run", "-d", "--name", c, "--network", network, "-p", "80", "-p", "[::1]::81",
                       "busybox", "sh", "-c", "echo hi6 | nc -l -p 81; sleep 60"))
    try:
        ports = _inspect(backend, "inspect", c)["NetworkSettings"]["Ports"]
        assert [b["HostIp"] for b in ports["80/tcp"]] == ["0.0.0.0", "::"]
        assert all(int(b["HostPort"]) > 0 for b in ports["80/tcp"])  # dockerd 20.10 may pick two numbers
        assert [b["HostIp"] for b in ports["81/tcp"]] == ["::1"]
        out = _ok(backend.docker("port", c))
        assert sorted(_mask_ports(out).splitlines()) == ["80/tcp -> 0.0.0.0:N", "80/tcp -> [::]:N", "81/tcp -> [::1]:N"]
        assert _ok(backend.hb("port", c)) == out  # hostbridge's own CLI prints what docker prints
        ps = _ok(backend.docker("ps", "--filter", "name=" + c, "--format", "{{.Ports}}"))
        assert _ok(backend.hb("ps", "--filter", "name=" + c, "--format", "{{.Ports}}")) == ps
        assert _read_banner(int(ports["81/tcp"][0]["HostPort"])) == b"hi6\n"
    finally:
        backend.docker("rm", "-f", c)


def test_hostbridge_cli_ip6_as_the_stock_cli(backend, v6net):
    name, prefix = v6net
    addr = {}
    for cli, host in (("docker", "77"), ("hb", "78")):
        run = backend.docker if cli == "docker" else backend.hb
        c = _name(cli)
        _ok(run("create", "--name", c, "--network", name, "--ip6", prefix + host, "busybox", "true"))
        addr[cli] = _inspect(backend, "inspect", c)["NetworkSettings"]["Networks"][name]["IPAMConfig"]
    assert addr == {"docker": {"IPv6Address": prefix + "77"}, "hb": {"IPv6Address": prefix + "78"}}
    other = _name("v6b")
    _ok(backend.docker("network", "create", "--ipv6", "--subnet", _ula() + "/64", other))
    try:
        c = _name("conn")
        _ok(backend.docker("create", "--name", c, "--network", "none", "busybox", "true"))
        _ok(backend.docker("network", "disconnect", "none", c))
        nprefix = json.loads(_ok(backend.docker("network", "inspect", "-f", "{{json .IPAM.Config}}", other)))[1]["Subnet"][:-3]
        _ok(backend.hb("network", "connect", "--ip6", nprefix + "9", other, c))
        ep = _inspect(backend, "inspect", c)["NetworkSettings"]["Networks"][other]
        assert ep["IPAMConfig"] == {"IPv6Address": nprefix + "9"}
        _ok(backend.docker("rm", c))
    finally:
        backend.docker("network", "rm", other)


def test_a_host_port_range_takes_its_first_free_port(backend):
    net = _name("rng")
    _ok(backend.docker("network", "create", net))
    base = random.randrange(20000, 30000, 10)
    span = "%d-%d:80" % (base, base + 1)
    made = []
    try:
        for _ in range(2):
            made.append(_name("rng"))
            _ok(backend.docker("run", "-d", "--name", made[-1], "--network", net, "-p", span, "busybox", "sleep", "60"))
        got = [sorted(_ok(backend.docker("port", c, "80")).splitlines()) for c in made]
        assert got == [["0.0.0.0:%d" % base, "[::]:%d" % base], ["0.0.0.0:%d" % (base + 1), "[::]:%d" % (base + 1)]]
        binding = _inspect(backend, "inspect", made[0])["HostConfig"]["PortBindings"]
        assert binding == {"80/tcp": [{"HostIp": "", "HostPort": "%d-%d" % (base, base + 1)}]}  # kept as asked
        made.append(_name("rng"))
        r = backend.docker("run", "-d", "--name", made[-1], "--network", net, "-p", span, "busybox", "sleep", "60")
        assert r.returncode == 125 and "all ports are allocated" in r.stderr, r.stderr
    finally:
        backend.docker("rm", "-f", *made)
        backend.docker("network", "rm", net)
