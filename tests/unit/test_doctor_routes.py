"""doctor's route reading, as it reads a VM guest's /proc/net/route (pure)."""

import ipaddress

from hostbridge.doctor import parse_routes, subnet_clashes

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
hb0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
vpn0\t00C811AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_guest_routes_are_parsed_without_the_default_route():
    assert parse_routes(ROUTES) == [(ipaddress.ip_network("10.0.2.0/24"), "eth0"),
                                    (ipaddress.ip_network("172.17.0.0/16"), "hb0"),
                                    (ipaddress.ip_network("172.17.200.0/24"), "vpn0")]


def test_a_network_s_own_bridge_route_is_no_clash_but_a_vpn_route_inside_it_is():
    routes = parse_routes(ROUTES)
    assert subnet_clashes({"bridge": ["172.17.0.0/16"]}, routes, bridges={"hb0"}) == [
        ("bridge", "172.17.0.0/16", "172.17.200.0/24", "vpn0")]
    # Without knowing hb0 is a bridge, its own route counts too.
    assert len(subnet_clashes({"bridge": ["172.17.0.0/16"]}, routes, bridges=set())) == 2
    assert subnet_clashes({"app": ["192.168.0.0/20"]}, routes, bridges={"hb0"}) == []
