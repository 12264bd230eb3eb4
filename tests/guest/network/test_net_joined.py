"""``--network container:X`` through the engine and the docker CLI: X's namespace, etc files and
hostname, the options docker refuses with it, and the start refused while X is not running.

Behaviour checked against Debian's dockerd (20.10) on this machine.
"""

import pytest

from tests.guest.network.netutil import dk, inspect

pytestmark = pytest.mark.root


def test_joined_container_shares_hosts_resolv_and_hostname(docker_env, cleanup):
    cleanup["networks"].append("jn-net")
    cleanup["containers"] += ["jn-x", "jn-j", "jn-peer"]
    dk(docker_env, "network", "create", "jn-net")
    dk(docker_env, "run", "-d", "--name", "jn-x", "--network", "jn-net", "--hostname", "xhost",
       "--add-host", "foo:10.1.2.3", "--dns", "10.9.9.9", "busybox", "sleep", "120")
    x = inspect(docker_env, "jn-x")
    files = "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname; ip -o -4 addr show eth0"
    theirs = dk(docker_env, "exec", "jn-x", "sh", "-c", files).stdout
    ours = dk(docker_env, "run", "--rm", "--network", "container:jn-x", "busybox", "sh", "-c", files).stdout
    assert ours == theirs
    assert "10.1.2.3\tfoo" in ours and "nameserver 10.9.9.9" in ours and "xhost\nxhost\n" in ours
    assert x["NetworkSettings"]["Networks"]["jn-net"]["IPAddress"] in ours

    dk(docker_env, "run", "-d", "--name", "jn-j", "--network", "container:jn-x", "busybox", "sleep", "120")
    j = inspect(docker_env, "jn-j")
    assert j["HostConfig"]["NetworkMode"] == "container:" + x["Id"]
    for key in ("HostsPath", "ResolvConfPath", "HostnamePath"):
        assert j[key] == x[key]
    assert j["Config"]["Hostname"] == "xhost" and j["NetworkSettings"]["Networks"] == {}
    # the very same files: a peer joining X's network shows up in the joined container too
    dk(docker_env, "run", "-d", "--name", "jn-peer", "--network", "jn-net", "busybox", "sleep", "120")
    assert "jn-peer" in dk(docker_env, "exec", "jn-j", "cat", "/etc/hosts").stdout


@pytest.mark.parametrize("args, message", [
    (["-h", "other"], "conflicting options: hostname and the network mode"),
    (["--dns", "10.9.9.9"], "conflicting options: dns and the network mode"),
    (["--add-host", "a:10.1.1.1"], "conflicting options: custom host-to-IP mapping and the network mode"),
    (["-p", "80"], "conflicting options: port publishing and the container type network mode"),
])
def test_options_refused_with_a_net_container(docker_env, cleanup, args, message):
    cleanup["containers"].append("jn-opt")
    dk(docker_env, "run", "-d", "--name", "jn-opt", "busybox", "sleep", "120")
    r = dk(docker_env, "create", "--network", "container:jn-opt", *args, "busybox", "true", check=False)
    assert r.returncode != 0 and message in r.stderr


def test_start_refused_while_net_container_is_not_running(docker_env, cleanup):
    cleanup["containers"] += ["jn-x2", "jn-j2", "jn-j3", "jn-j4"]
    dk(docker_env, "run", "-d", "--name", "jn-x2", "busybox", "sleep", "120")
    x = inspect(docker_env, "jn-x2")
    dk(docker_env, "run", "-d", "--name", "jn-j2", "--network", "container:jn-x2", "busybox", "sleep", "120")
    dk(docker_env, "create", "--name", "jn-j3", "--network", "container:jn-x2", "busybox", "sleep", "120")
    dk(docker_env, "stop", "-t", "0", "jn-x2")
    # as with dockerd: the joined container keeps running, in a namespace without X's interface
    j2 = inspect(docker_env, "jn-j2")
    assert j2["State"]["Running"]
    assert "eth0" not in dk(docker_env, "exec", "jn-j2", "ip", "-o", "link").stdout
    refused = "cannot join network of a non running container: %s" % x["Id"]
    r = dk(docker_env, "start", "jn-j3", check=False)
    assert r.returncode != 0 and refused in r.stderr
    r = dk(docker_env, "run", "--name", "jn-j4", "--network", "container:jn-x2", "busybox", "true", check=False)
    assert r.returncode != 0 and refused in r.stderr
    assert inspect(docker_env, "jn-j3")["State"]["Status"] == "created"
    dk(docker_env, "rm", "jn-x2")  # allowed, as with dockerd; the joined container still runs
    assert inspect(docker_env, "jn-j2")["State"]["Running"]
    r = dk(docker_env, "start", "jn-j3", check=False)
    assert r.returncode != 0 and "No such container: %s" % x["Id"] in r.stderr
