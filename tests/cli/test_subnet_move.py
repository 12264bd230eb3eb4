"""A container subnet that clashes with the host's routes is moved at `up`, with a note.

The native engine runs in a network namespace of the test's own (`ip netns exec NS hostbridge
up`): its default bridge takes a free range; then a "VPN" (a veth link with a route inside
that range) comes up in the namespace, and the next `up` moves the bridge to a free range and
says so. The host's real routing table is never touched.
"""

import ipaddress
import json
import os
import random
import subprocess
import sys

import pytest

from tests.cli.conftest import REPO
from tests.cli.test_doctor import _env

pytestmark = pytest.mark.root


def _hb(env, ns, *args):
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hostbridge.cli"] + list(args), env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def _bridge(env):
    out = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True, env=env,
                         check=True, timeout=60).stdout
    return json.loads(out)[0]


def _bridge_subnet(env):
    return ipaddress.ip_network(_bridge(env)["IPAM"]["Config"][0]["Subnet"])


def test_the_default_bridge_moves_off_a_route_that_came_up_since(tmp_path):
    ns = "hbmv%05d" % random.randrange(100000)
    sock = str(tmp_path / "run" / "docker.sock")
    env = _env(tmp_path, sock)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        r = _hb(env, ns, "up")
        assert r.returncode == 0, r.stderr
        assert "default bridge" not in r.stderr
        before, bridge_id = _bridge_subnet(env), _bridge(env)["Id"]
        assert _hb(env, ns, "down").returncode == 0

        vpn = list(before.subnets(new_prefix=24))[-1]
        for cmd in (["link", "add", "vpn0", "type", "veth", "peer", "name", "vpn1"],  # both ends inside
                    ["addr", "add", "%s/24" % next(vpn.hosts()), "dev", "vpn0"],
                    ["link", "set", "vpn1", "up"], ["link", "set", "vpn0", "up"]):
            subprocess.run(["ip", "-n", ns] + cmd, check=True)
        r = _hb(env, ns, "up")
        assert r.returncode == 0, r.stderr
        after = _bridge_subnet(env)
        assert not after.overlaps(vpn)
        assert _bridge(env)["Id"] == bridge_id  # a created container names it by its id: it keeps it
        assert ("note: the default bridge network moved to %s, off %s, which overlaps the host route %s via vpn0"
                % (after, before, vpn)) in r.stderr
        info = subprocess.run(["docker", "info", "--format", "{{json .Warnings}}"], capture_output=True, text=True,
                              env=env, check=True, timeout=60).stdout
        assert "moved to %s" % after in info

        assert _hb(env, ns, "down").returncode == 0
        r = _hb(env, ns, "up")  # no clash left: no note, the same range
        assert r.returncode == 0 and "default bridge" not in r.stderr, r.stderr
        assert _bridge_subnet(env) == after
    finally:
        _hb(env, ns, "down")
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        assert not os.path.exists(sock)
