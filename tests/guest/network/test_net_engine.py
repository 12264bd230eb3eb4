"""Container networking through the real engine and the stock docker CLI.

Traffic goes only to 127.0.0.1 and to the containers these tests create.
"""

import hashlib
import json
import socket
import subprocess
import urllib.request

import pytest

from tests.guest.network.netutil import dk, inspect, links, ruleset, udp_echo

pytestmark = pytest.mark.root


def _veth(cid, nid):
    return "vh" + hashlib.sha256((cid + nid).encode()).hexdigest()[:11]


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_httpd_by_ip_and_published_loopback(docker_env, cleanup):
    cleanup["containers"].append("nt-web")
    dk(docker_env, "run", "-d", "--name", "nt-web", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80",
       "-h", "/etc")
    c = inspect(docker_env, "nt-web")
    ns = c["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ip and ns["Networks"]["bridge"]["IPAddress"] == ip and ns["IPPrefixLen"] > 0
    assert ns["MacAddress"] == "02:42:" + ":".join("%02x" % int(x) for x in ip.split("."))
    assert ns["Gateway"] == ns["Networks"]["bridge"]["Gateway"]
    binding = ns["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
    hostname = c["Config"]["Hostname"]
    assert _get("http://%s/hostname" % ip).strip() == hostname
    assert _get("http://127.0.0.1:%s/hostname" % binding["HostPort"]).strip() == hostname
    assert dk(docker_env, "port", "nt-web").stdout.strip() == "80/tcp -> 127.0.0.1:%s" % binding["HostPort"]
    assert dk(docker_env, "port", "nt-web", "80").stdout.strip() == "127.0.0.1:%s" % binding["HostPort"]
    ps = dk(docker_env, "ps", "--filter", "name=nt-web", "--format", "{{.Ports}}").stdout.strip()
    assert ps == "127.0.0.1:%s->80/tcp" % binding["HostPort"]


def test_udp_echo_through_published_port(docker_env, cleanup):
    cleanup["containers"].append("nt-udp")
    dk(docker_env, "run", "-d", "--name", "nt-udp", "-p", "127.0.0.1::5353/udp", "busybox", "sleep", "120")
    c = inspect(docker_env, "nt-udp")
    port = int(c["NetworkSettings"]["Ports"]["5353/udp"][0]["HostPort"])
    echo = udp_echo(c["State"]["Pid"], 5353)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for i in range(3):
                s.sendto(b"datagram %d" % i, ("127.0.0.1", port))
                assert s.recvfrom(100)[0] == b"datagram %d" % i
    finally:
        echo.kill()
        echo.wait()


def test_user_network_names_aliases_and_ip(docker_env, cleanup):
    cleanup["networks"].append("nt-app")
    cleanup["containers"] += ["nt-db", "nt-client"]
    dk(docker_env, "network", "create", "--subnet", "10.213.0.0/24", "--gateway", "10.213.0.254", "nt-app")
    dk(docker_env, "run", "-d", "--name", "nt-db", "--network", "nt-app", "--network-alias", "database",
       "--ip", "10.213.0.50", "busybox", "sleep", "120")
    dk(docker_env, "run", "-d", "--name", "nt-client", "--network", "nt-app", "busybox", "sleep", "120")
    for name in ("nt-db", "database"):
        r = dk(docker_env, "exec", "nt-client", "ping", "-c", "1", "-W", "3", name)
        assert "10.213.0.50" in r.stdout
    assert "nt-client" in dk(docker_env, "exec", "nt-db", "cat", "/etc/hosts").stdout
    db = inspect(docker_env, "nt-db")
    ep = db["NetworkSettings"]["Networks"]["nt-app"]
    assert ep["IPAddress"] == "10.213.0.50" and ep["Gateway"] == "10.213.0.254" and ep["IPPrefixLen"] == 24
    assert "database" in ep["Aliases"] and ep["DNSNames"][0] == "nt-db"
    assert db["NetworkSettings"]["IPAddress"] == ""  # docker fills the top level for the default bridge only
    net = json.loads(dk(docker_env, "network", "inspect", "nt-app").stdout)[0]
    assert net["IPAM"]["Config"] == [{"Subnet": "10.213.0.0/24", "Gateway": "10.213.0.254"}]
    assert net["Containers"][db["Id"]]["IPv4Address"] == "10.213.0.50/24"
    route = dk(docker_env, "exec", "nt-client", "ip", "route").stdout
    assert "default via 10.213.0.254" in route
    clash = dk(docker_env, "network", "create", "--subnet", "10.213.0.128/25", "nt-clash", check=False)
    assert clash.returncode != 0 and "10.213.0.0/24" in clash.stderr and "nt-app" in clash.stderr
    busy = dk(docker_env, "network", "rm", "nt-app", check=False)
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    taken = dk(docker_env, "run", "--rm", "--network", "nt-app", "--ip", "10.213.0.50", "busybox", "true", check=False)
    assert taken.returncode != 0 and "10.213.0.50" in taken.stderr


def test_connect_and_disconnect_a_running_container(docker_env, cleanup):
    cleanup["networks"].append("nt-side")
    cleanup["containers"].append("nt-multi")
    dk(docker_env, "network", "create", "nt-side")
    dk(docker_env, "run", "-d", "--name", "nt-multi", "busybox", "sleep", "120")
    dk(docker_env, "network", "connect", "--alias", "multi", "nt-side", "nt-multi")
    eps = inspect(docker_env, "nt-multi")["NetworkSettings"]["Networks"]
    assert set(eps) == {"bridge", "nt-side"} and eps["nt-side"]["IPAddress"]
    assert eps["nt-side"]["IPAddress"] in dk(docker_env, "exec", "nt-multi", "ip", "-o", "addr").stdout
    dk(docker_env, "network", "disconnect", "nt-side", "nt-multi")
    assert set(inspect(docker_env, "nt-multi")["NetworkSettings"]["Networks"]) == {"bridge"}
    assert "eth1" not in dk(docker_env, "exec", "nt-multi", "ip", "-o", "link").stdout


def test_network_none_has_only_loopback(docker_env, cleanup):
    cleanup["containers"].append("nt-none")
    dk(docker_env, "run", "-d", "--name", "nt-none", "--network", "none", "busybox", "sleep", "120")
    c = inspect(docker_env, "nt-none")
    out = subprocess.run(["nsenter", "-t", str(c["State"]["Pid"]), "-n", "ip", "-j", "link"], capture_output=True,
                         check=True).stdout
    assert [(link["ifname"], "UP" in link["flags"]) for link in json.loads(out)] == [("lo", True)]
    assert c["NetworkSettings"]["IPAddress"] == "" and list(c["NetworkSettings"]["Networks"]) == ["none"]


def test_rules_and_veth_gone_after_rm(engine, docker_env, cleanup):
    cleanup["containers"].append("nt-gone")
    dk(docker_env, "run", "-d", "--name", "nt-gone", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80")
    c = inspect(docker_env, "nt-gone")
    ip = c["NetworkSettings"]["IPAddress"]
    veth = _veth(c["Id"], c["NetworkSettings"]["Networks"]["bridge"]["NetworkID"])
    assert veth in links() and "--to-destination %s:80" % ip in ruleset()
    dk(docker_env, "rm", "-f", "nt-gone")
    assert veth not in links()
    assert "--to-destination %s:80" % ip not in ruleset()


def test_port_in_use_fails_start_cleanly(docker_env, cleanup):
    cleanup["containers"].append("nt-busy")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        before = links()
        r = dk(docker_env, "run", "-d", "--name", "nt-busy", "-p", "127.0.0.1:%d:80" % port, "busybox", "sleep", "60",
               check=False)
        assert r.returncode != 0 and "port is already allocated" in r.stderr
        st = inspect(docker_env, "nt-busy")["State"]
        assert not st["Running"] and st["Pid"] == 0
        assert links() == before
    finally:
        holder.close()


def test_network_cli_shapes(docker_env, cleanup):
    cleanup["networks"].append("nt-shape")
    dk(docker_env, "network", "create", "--label", "team=a", "nt-shape")
    rows = [json.loads(x) for x in dk(docker_env, "network", "ls", "--format", "{{json .}}").stdout.splitlines()]
    by_name = {r["Name"]: r for r in rows}
    assert by_name["bridge"]["Driver"] == "bridge" and by_name["host"]["Driver"] == "host"
    assert by_name["none"]["Driver"] == "null" and by_name["nt-shape"]["Scope"] == "local"
    assert dk(docker_env, "network", "ls", "-q", "--filter", "label=team=a").stdout.split() == [by_name["nt-shape"]["ID"]]
    fmt = dk(docker_env, "network", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Internal}}", "nt-shape").stdout
    assert fmt.strip() == "bridge local false"
    bad = dk(docker_env, "network", "rm", "bridge", check=False)
    assert bad.returncode != 0 and "pre-defined" in bad.stderr
    missing = dk(docker_env, "run", "--rm", "--network", "nt-nope", "busybox", "true", check=False)
    assert missing.returncode != 0 and "network nt-nope not found" in missing.stderr
    assert "nt-shape" in dk(docker_env, "network", "prune", "-f").stdout


def test_publish_all_exposed_ports(docker_env, cleanup):
    cleanup["containers"].append("nt-all")
    dk(docker_env, "run", "-d", "--name", "nt-all", "-P", "--expose", "80", "--expose", "81/udp", "busybox",
       "httpd", "-f", "-p", "80", "-h", "/etc")
    ports = inspect(docker_env, "nt-all")["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/udp"}
    tcp = ports["80/tcp"][0]
    assert tcp["HostIp"] == "0.0.0.0" and int(tcp["HostPort"]) > 0 and int(ports["81/udp"][0]["HostPort"]) > 0
    assert _get("http://127.0.0.1:%s/hostname" % tcp["HostPort"]).strip()


def test_hostname_add_host_dns_and_restart_keeps_address(docker_env, cleanup):
    cleanup["networks"].append("nt-etc")
    cleanup["containers"].append("nt-etc1")
    dk(docker_env, "network", "create", "nt-etc")
    dk(docker_env, "run", "-d", "--name", "nt-etc1", "--network", "nt-etc", "--hostname", "myhost",
       "--add-host", "gateway.test:10.1.2.3", "--dns", "10.9.9.9", "busybox", "sleep", "120")
    hosts = dk(docker_env, "exec", "nt-etc1", "cat", "/etc/hosts").stdout
    ip = inspect(docker_env, "nt-etc1")["NetworkSettings"]["Networks"]["nt-etc"]["IPAddress"]
    assert "10.1.2.3\tgateway.test" in hosts and "%s\tmyhost" % ip in hosts
    assert dk(docker_env, "exec", "nt-etc1", "hostname").stdout.strip() == "myhost"
    assert "nameserver 10.9.9.9" in dk(docker_env, "exec", "nt-etc1", "cat", "/etc/resolv.conf").stdout
    dk(docker_env, "restart", "-t", "0", "nt-etc1")
    assert inspect(docker_env, "nt-etc1")["NetworkSettings"]["Networks"]["nt-etc"]["IPAddress"] == ip


def test_sdk_shapes(engine, cleanup):
    docker = pytest.importorskip("docker")
    cleanup["networks"].append("nt-sdk")
    cleanup["containers"].append("nt-sdk-c")
    client = docker.DockerClient(base_url=engine.url)
    try:
        net = client.networks.create("nt-sdk", driver="bridge", ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet="10.214.0.0/24")]))
        c = client.containers.run("busybox", ["sleep", "60"], name="nt-sdk-c", detach=True, network="nt-sdk",
                                  ports={"80/tcp": ("127.0.0.1", None)})
        c.reload()
        assert c.attrs["NetworkSettings"]["Networks"]["nt-sdk"]["IPAddress"].startswith("10.214.0.")
        assert c.ports["80/tcp"][0]["HostIp"] == "127.0.0.1"
        net.reload()
        assert [x.name for x in net.containers] == ["nt-sdk-c"]
        assert {n.name for n in client.networks.list()} >= {"bridge", "host", "none", "nt-sdk"}
    finally:
        client.close()
