"""Registry tier fixtures: docker-registry (plain, htpasswd, token) on 127.0.0.1, a fault proxy.

A guard refuses any connection or name lookup from this process to anything but loopback while
a registry test runs, so a bug (say a fallback to Docker Hub) fails loudly instead of reaching out.
"""

import ipaddress
import os
import shutil
import sys

import pytest

from tests.registry import regsupport

_GUARD = {"on": False}


def _is_loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(event, args):
    if not _GUARD["on"]:
        return
    if event == "socket.getaddrinfo" and not _is_loopback(args[0]):
        raise RuntimeError("network guard: a registry test tried to resolve %r" % (args[0],))
    if event == "socket.connect":
        addr = args[1]
        if isinstance(addr, tuple) and not _is_loopback(addr[0]):
            raise RuntimeError("network guard: a registry test tried to connect to %r" % (addr,))


sys.addaudithook(_guard)


@pytest.fixture(autouse=True)
def loopback_only():
    _GUARD["on"] = True
    yield
    _GUARD["on"] = False


def _need_registry():
    if not os.path.exists(regsupport.REGISTRY_BIN):
        pytest.skip("docker-registry is missing: apt-get install docker-registry")


@pytest.fixture
def registry(tmp_path):
    """A plain registry (no auth)."""
    _need_registry()
    srv = regsupport.RegistryServer(str(tmp_path / "registry")).start()
    yield srv
    srv.stop()


@pytest.fixture
def basic_registry(tmp_path):
    """A registry with htpasswd Basic auth; user alice / password wonderland."""
    _need_registry()
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd is missing: apt-get install apache2-utils")
    work = str(tmp_path / "registry")
    os.makedirs(work)
    srv = regsupport.RegistryServer(work, regsupport.htpasswd_yaml(work, {"alice": "wonderland"})).start()
    yield srv
    srv.stop()


@pytest.fixture
def token_registry(tmp_path):
    """A registry with token auth; the token server knows bob / builder and reader / books (pull
    only); anonymous may pull."""
    _need_registry()
    pytest.importorskip("cryptography")
    work = str(tmp_path / "registry")
    os.makedirs(work)
    tokens = regsupport.TokenServer(work, {"bob": "builder", "reader": "books"},
                                   anonymous_actions=("pull",), readers=("reader",)).start()
    srv = regsupport.RegistryServer(work, tokens.registry_yaml()).start()
    srv.tokens = tokens
    yield srv
    srv.stop()
    tokens.stop()


@pytest.fixture
def proxy(registry):
    """A FaultProxy in front of the plain registry."""
    p = regsupport.FaultProxy(registry.port).start()
    yield p
    p.stop()
