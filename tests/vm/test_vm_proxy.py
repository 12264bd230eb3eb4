"""Corporate networks in VM mode: the host's HTTPS_PROXY, a small CONNECT proxy on the host's
127.0.0.1, reaches the guest's engine (through 10.0.2.2, QEMU's address of the host's
loopback), with the extra CA of ``registry.ca``; a pull from the TLS registry behind it works.
``config set vm.proxy none`` takes the proxy away at the next `up` (the engine restarts with
its new settings) and the same pull fails. The registry is named ``registry.test``, which
resolves nowhere: only the proxy knows it. All traffic goes to 127.0.0.1.
"""

import json
import os

import pytest

from tests.registry.test_proxy import NAME as REGISTRY, corp  # noqa: F401 (the registry fixture)
from tests.support.hbhome import HostbridgeHome, shared_image_cache

pytestmark = pytest.mark.vm
BOOT = 600  # seconds an `up` may take under TCG on a busy 2-core host
NAME = "prx%d" % (os.getpid() % 10000)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = HostbridgeHome(str(tmp_path_factory.mktemp("vmproxy")), shared_image_cache())
    yield h
    if os.path.exists(os.path.join(h.machine_dir(NAME), "machine.json")):
        h.hb("destroy", "-f", "--machine", NAME, timeout=120)


def test_a_pull_goes_through_the_hosts_loopback_proxy_and_fails_without_it(host, corp):  # noqa: F811
    for k in ("HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        host.env.pop(k, None)
    host.env.update(HTTPS_PROXY=corp.proxy.url, NO_PROXY="localhost")
    host.hb("config", "set", "registry.ca", corp.ca, check=True)
    r = host.hb("up", "--machine", NAME, "--driver", "qemu", "--cpus", "1", "--memory", "768", "--disk", "3G",
                "--share", host.home, timeout=BOOT)
    assert r.returncode == 0, r.stderr
    settings = json.loads(host.hb("ssh", "--machine", NAME, "--", "cat /var/lib/hostbridge/engine-settings.json",
                                  check=True).stdout)
    port = corp.proxy.url.rsplit(":", 1)[1]
    assert settings["proxies"] == {"http-proxy": "", "https-proxy": "http://10.0.2.2:%s" % port,
                                   "no-proxy": "localhost"}
    assert len(settings["registry-ca"]) == 1

    ref = "%s:%d/corp/app:1" % (REGISTRY, corp.tls.port)
    r = host.hb("--machine", NAME, "pull", ref, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ("CONNECT", "%s:%d" % (REGISTRY, corp.tls.port)) in corp.proxy.seen
    r = host.hb("--machine", NAME, "run", "--rm", ref, timeout=300)
    assert (r.returncode, r.stdout) == (0, "through the proxy\n"), r.stderr

    host.hb("config", "set", "vm.proxy", "none", check=True)
    r = host.hb("up", "--machine", NAME, timeout=BOOT)  # running: only the engine restarts, with no proxy
    assert r.returncode == 0, r.stderr
    assert host.hb("--machine", NAME, "rmi", ref).returncode == 0
    corp.proxy.seen.clear()
    r = host.hb("--machine", NAME, "pull", ref, timeout=300)
    assert r.returncode != 0 and REGISTRY in r.stderr, r.stderr
    assert corp.proxy.seen == []
