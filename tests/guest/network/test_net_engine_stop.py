"""An engine stop removes every rule, veth and bridge of that engine; a restart brings them back."""

import json
import os
import urllib.request

import pytest

from tests.guest.network.netutil import dk, links, ruleset

pytestmark = pytest.mark.root


def _prefix_and_bridge(root):
    from hostbridge.guest.network.manager import instance_names
    return instance_names(root)


def test_stop_leaves_nothing_and_restart_restores(tmp_path, busybox_rootfs_tar):
    from tests.support.engine import Engine
    e = Engine(tmp_path).start()
    env = dict(os.environ, DOCKER_HOST=e.url, DOCKER_CONFIG=str(tmp_path / "dc"), DOCKER_CLI_HINTS="false")
    prefix, bridge = _prefix_and_bridge(e.root)
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        dk(env, "network", "create", "stop-net")
        dk(env, "run", "-d", "--name", "stop-web", "--network", "stop-net", "-p", "127.0.0.1::80", "busybox",
           "httpd", "-f", "-p", "80", "-h", "/etc")
        c = json.loads(dk(env, "inspect", "stop-web").stdout)[0]
        port = c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        net_bridge = "br-" + c["NetworkSettings"]["Networks"]["stop-net"]["NetworkID"][:12]
        assert bridge in links() and net_bridge in links() and prefix in ruleset()
        assert "-A %s-ISOLATION-2 -o %s -j DROP" % (prefix, net_bridge) in ruleset()
        e.stop()
        assert prefix not in ruleset()  # the isolation chains too
        assert not {bridge, net_bridge} & links()
        assert not any(name.startswith("vh") and name in links() for name in _veths(c))
        e.start()  # the container kept running without the engine; its network comes back
        assert prefix in ruleset() and net_bridge in links()
        assert "-A %s-ISOLATION-2 -o %s -j DROP" % (prefix, net_bridge) in ruleset()
        with urllib.request.urlopen("http://127.0.0.1:%s/hostname" % port, timeout=10) as r:
            assert r.read().decode().strip() == c["Config"]["Hostname"]
    finally:
        e.cleanup_containers()
        dk(env, "network", "rm", "stop-net", check=False)
        e.stop()
    assert prefix not in ruleset() and bridge not in links()


def _veths(c):
    import hashlib
    return ["vh" + hashlib.sha256((c["Id"] + ep["NetworkID"]).encode()).hexdigest()[:11]
            for ep in c["NetworkSettings"]["Networks"].values()]
