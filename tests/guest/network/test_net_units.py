"""Pure parts of networking: subnet choice, address pools, port requests, rule rendering."""

import ipaddress
import json

import pytest

from hostbridge.guest.errors import Conflict, InvalidParameter
from hostbridge.guest.network import ipam, ports
from hostbridge.guest.network.firewall import NetRule, PortRule, parse_save, render_clear, render_iptables, render_nft, with_jumps
from hostbridge.guest.network.manager import instance_names


def _n(text):
    return ipaddress.ip_network(text)


def test_pick_subnet_skips_routes_and_networks():
    taken = [(_n("172.17.0.0/16"), "a host route via docker0"), (_n("172.18.5.0/24"), "network foo")]
    assert str(ipam.pick_subnet(taken)) == "172.19.0.0/16"
    assert str(ipam.pick_subnet([])) == "172.17.0.0/16"


def test_pick_subnet_falls_back_to_192_168_then_fails():
    taken = [(_n("172.16.0.0/12"), "x")]
    assert str(ipam.pick_subnet(taken)) == "192.168.0.0/20"
    with pytest.raises(Exception, match="non-overlapping"):
        ipam.pick_subnet(taken + [(_n("192.168.0.0/16"), "y")])


def test_find_clash_names_the_other():
    clash = ipam.find_clash(_n("10.1.2.0/24"), [(_n("10.1.0.0/16"), "network backend")])
    assert clash == (_n("10.1.0.0/16"), "network backend")
    assert ipam.find_clash(_n("10.2.0.0/24"), [(_n("10.1.0.0/16"), "n")]) is None


@pytest.mark.parametrize("family", [4, 6])
def test_host_routes_are_those_ip_lists(family):
    """Read over netlink, the routes are those ``ip route show table all`` lists (the oracle),
    without the default route, local/broadcast/multicast, loopback and link-local ones."""
    import subprocess
    for _ in range(3):  # other engines on this host may add a bridge between the two reads
        out = subprocess.run(["ip", "-%d" % family, "-j", "route", "show", "table", "all"], capture_output=True,
                             check=True).stdout
        want = []
        for r in json.loads(out or b"[]"):
            if r.get("dst", "default") == "default" or r.get("type") in ("local", "broadcast", "multicast"):
                continue
            net = ipaddress.ip_network(r["dst"], strict=False)
            if not net.is_loopback and not net.is_link_local:
                want.append((net, r.get("dev", "")))
        got = ipam.host_routes(family=family)
        if sorted(got, key=str) == sorted(want, key=str):
            break
    assert sorted(got, key=str) == sorted(want, key=str)
    assert all(net.version == family for net, _ in got)


def test_parse_subnet_refuses_garbage():
    with pytest.raises(InvalidParameter, match="Subnet"):
        ipam.parse_subnet("10.0.0.300/24")
    with pytest.raises(InvalidParameter, match="IPv4"):
        ipam.parse_subnet("fd00::/64")


def test_pool_allocates_persists_and_releases(tmp_path):
    path = str(tmp_path / "n.json")
    pool = ipam.Pool(path, _n("10.5.0.0/29"))
    assert str(pool.gateway) == "10.5.0.1"
    a = pool.allocate("c1")
    assert a == "10.5.0.2"
    assert pool.allocate("c1") == a  # the same owner keeps its address
    assert pool.allocate("c2", "10.5.0.5") == "10.5.0.5"
    with pytest.raises(Conflict, match="10.5.0.5"):
        pool.allocate("c3", "10.5.0.5")
    with pytest.raises(InvalidParameter):
        pool.allocate("c3", "10.5.0.1")  # the gateway
    again = ipam.Pool(path, _n("10.99.0.0/24"))  # a restart: the saved pool wins
    assert again.subnet == _n("10.5.0.0/29") and again.allocated == {"10.5.0.2": "c1", "10.5.0.5": "c2"}
    again.release("c1")
    assert ipam.Pool(path, None).allocated == {"10.5.0.5": "c2"}
    for owner in ("c3", "c4", "c5", "c6"):
        again.allocate(owner)
    with pytest.raises(Conflict, match="no available"):
        again.allocate("c7")


def test_ipv6_subnets_and_pools(tmp_path):
    assert ipam.parse_subnet("fd00:1::/64", versions=(6,)) == _n("fd00:1::/64")
    with pytest.raises(InvalidParameter, match="/126"):
        ipam.parse_subnet("fd00:1::/127", versions=(6,))
    assert ipam.split_configs([{"Subnet": "fd00:1::/64"}, {"Subnet": "10.1.0.0/24"}]) == (
        {"Subnet": "10.1.0.0/24"}, {"Subnet": "fd00:1::/64"})
    assert ipam.split_configs([{"Gateway": "10.1.0.1"}]) == ({"Gateway": "10.1.0.1"}, {})
    # an IPv4 and an IPv6 network never clash, whatever their integers
    assert ipam.find_clash(_n("0.0.0.0/0"), [(_n("::/0"), "v6")]) is None
    pool = ipam.Pool(str(tmp_path / "n-v6.json"), _n("fd00:1::/64"))
    assert (str(pool.gateway), pool.allocate("c1"), pool.allocate("c2", "fd00:1::99")) == (
        "fd00:1::1", "fd00:1::2", "fd00:1::99")
    with pytest.raises(InvalidParameter, match="It does not belong to any of this network's subnets"):
        pool.allocate("c3", "fd00:2::9")
    with pytest.raises(InvalidParameter, match="invalid IPv6 address: zz"):
        pool.allocate("c3", "zz")


def test_published_ports_listen_on_both_families_without_a_host_address():
    assert ports.host_addresses("", ipv6=True) == ["0.0.0.0", "::"]
    assert ports.host_addresses("", ipv6=False) == ["0.0.0.0"]
    assert ports.host_addresses("::1", ipv6=True) == ["::1"]
    _, binds = ports.requested({}, {"PortBindings": {"80/tcp": [{"HostIp": "[::1]", "HostPort": "8080"}]}})
    assert binds[0]["host_ip"] == "::1"


def test_host_port_ranges():
    _, binds = ports.requested({}, {"PortBindings": {"80/tcp": [{"HostPort": "8000-8010"}], "81/tcp": [{"HostPort": "90"}]}})
    assert {(b["key"], b["host_port"], b["host_port_end"]) for b in binds} == {("80/tcp", 8000, 8010), ("81/tcp", 90, 90)}
    for bad in ("8010-8000", "1-70000", "a-b"):
        with pytest.raises(InvalidParameter, match="host port"):
            ports.requested({}, {"PortBindings": {"80/tcp": [{"HostPort": bad}]}})


def test_pool_gateway_must_be_inside(tmp_path):
    with pytest.raises(InvalidParameter, match="not in subnet"):
        ipam.Pool(str(tmp_path / "x.json"), _n("10.6.0.0/24"), "10.7.0.1")


def test_mac_is_derived_from_the_address():
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_instance_names_differ_per_root():
    assert instance_names("/var/lib/hostbridge") == ("HOSTBRIDGE", "hb0")
    a, b = instance_names("/tmp/a"), instance_names("/tmp/b")
    assert a != b and len(a[1]) <= 15 and len(a[0] + "-POSTROUTING") < 29


def test_port_requests():
    cfg = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]},
          "PublishAllPorts": True}
    exposed, binds = ports.requested(cfg, hc)
    assert exposed == {"80/tcp", "53/udp", "9000/tcp"}
    assert {(b["key"], b["host_ip"], b["host_port"]) for b in binds} == {
        ("80/tcp", "127.0.0.1", 8080), ("53/udp", "", 0), ("9000/tcp", "", 0)}
    view = ports.ports_view({"80/tcp", "81/tcp"}, [("80/tcp", "", 32768)])
    assert view == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}], "81/tcp": None}
    with pytest.raises(InvalidParameter, match="sctp"):
        ports.requested({}, {"PortBindings": {"80/sctp": None}})
    with pytest.raises(InvalidParameter, match="host port"):
        ports.requested({}, {"PortBindings": {"80/tcp": [{"HostPort": "eighty"}]}})


def test_rule_rendering_is_confined_to_our_chains():
    nets = [NetRule("hb0", "172.17.0.0/16")]
    prules = [PortRule("tcp", "0.0.0.0", 8080, "172.17.0.2", 80, "hb0"),
              PortRule("udp", "127.0.0.1", 5353, "172.17.0.3", 53, "hb0")]
    text = render_iptables("HB-T", nets, prules)
    for line in text.splitlines():
        if line.startswith("-A"):
            assert line.split()[1].startswith("HB-T")
    assert "-A HB-T ! -i hb0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80" in text
    assert "-A HB-T ! -i hb0 -p udp -d 127.0.0.1/32 -m udp --dport 5353 -j DNAT --to-destination 172.17.0.3:53" in text
    assert "-A HB-T-POSTROUTING -s 172.17.0.0/16 ! -o hb0 -j MASQUERADE" in text
    nft = render_nft("hb_t", nets, prules)
    assert nft.startswith("table ip hb_t {") and "dnat to 172.17.0.2:80" in nft


def test_internal_network_has_no_nat_and_no_way_out():
    text = render_iptables("HB-T", [NetRule("br-x", "10.3.0.0/24", internal=True)], [])
    assert "MASQUERADE" not in text
    assert "-A HB-T-ISOLATION-1 -i br-x ! -o br-x -j DROP" in text
    assert "-A HB-T-ISOLATION-1 -o br-x ! -i br-x -j DROP" in text
    nft = render_nft("hb_t", [NetRule("br-x", "10.3.0.0/24", internal=True)], [])
    assert 'iifname "br-x" oifname != "br-x" drop' in nft and "masquerade" not in nft


def test_isolation_stages_come_before_any_accept():
    nets = [NetRule("hb0", "172.17.0.0/16"), NetRule("br-a", "10.1.0.0/24")]
    lines = render_iptables("HB-T", nets, [PortRule("tcp", "0.0.0.0", 8080, "10.1.0.2", 80, "br-a")]).splitlines()
    fwd = [x for x in lines if x.startswith("-A HB-T-FORWARD ")]
    assert fwd[0] == "-A HB-T-FORWARD -j HB-T-ISOLATION-1"
    for b in ("hb0", "br-a"):
        assert "-A HB-T-ISOLATION-1 -i %s ! -o %s -j HB-T-ISOLATION-2" % (b, b) in lines
        assert "-A HB-T-ISOLATION-2 -o %s -j DROP" % b in lines
        # from our bridges, published ports go through the userland proxy (DNAT would cross bridges)
        assert lines.index("-A HB-T -i %s -j RETURN" % b) < next(i for i, x in enumerate(lines) if "DNAT" in x)
    nft = render_nft("hb_t", nets, [])
    assert nft.index('iifname "hb0" oifname { "br-a" } drop') < nft.index(" accept\n")
    assert 'iifname "br-a" oifname { "hb0" } drop' in nft


SAVED = """# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:HB-T-FORWARD - [0:0]
:HB-T-ISOLATION-1 - [0:0]
:HB-TX-FORWARD - [0:0]
-A FORWARD -j HB-T-FORWARD
-A FORWARD -j HB-T-FORWARD
-A FORWARD -j HB-TX-FORWARD
-A HB-T-FORWARD -j HB-T-ISOLATION-1
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:HB-T - [0:0]
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j HB-T
COMMIT
"""


def test_saved_rules_are_read_for_our_chains_only():
    chains, jumps = parse_save(SAVED, "HB-T")
    assert chains == {("filter", "HB-T-FORWARD"), ("filter", "HB-T-ISOLATION-1"), ("nat", "HB-T")}
    assert jumps == [("filter", "FORWARD -j HB-T-FORWARD")] * 2 + [
        ("nat", "OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j HB-T")]  # not HB-TX's, not our own chains'


def test_missing_jumps_are_inserted_in_the_same_batch():
    text = with_jumps(render_iptables("HB-T", [NetRule("hb0", "172.17.0.0/16")], []), "HB-T",
                      {("filter", "FORWARD", "HB-T-FORWARD"), ("nat", "OUTPUT", "HB-T")})
    lines = text.splitlines()
    inserts = [x for x in lines if x.startswith("-I ")]
    assert inserts == ["-I PREROUTING 1 -m addrtype --dst-type LOCAL -j HB-T",
                       "-I POSTROUTING 1 -j HB-T-POSTROUTING"]
    assert lines.index(inserts[0]) > lines.index("*nat") and lines[lines.index(inserts[1]) + 1] == "COMMIT"


def test_clear_deletes_every_jump_then_flushes_before_deleting():
    text = render_clear("HB-T", *parse_save(SAVED, "HB-T"))
    assert text.splitlines() == [
        "*filter", "-D FORWARD -j HB-T-FORWARD", "-D FORWARD -j HB-T-FORWARD",
        "-F HB-T-FORWARD", "-F HB-T-ISOLATION-1", "-X HB-T-FORWARD", "-X HB-T-ISOLATION-1", "COMMIT",
        "*nat", "-D OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j HB-T", "-F HB-T", "-X HB-T", "COMMIT"]
    assert render_clear("HB-T", set(), []) == ""
