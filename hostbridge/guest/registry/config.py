"""Where and how the engine reaches registries: endpoints (HTTPS, or HTTP for loopback and
insecure registries), docker.io mirrors, TLS trust (docker's certs.d), retries."""

from __future__ import annotations

import ipaddress
import os
import urllib.parse

HUB_DOMAIN = "docker.io"
HUB_ENDPOINT = "https://registry-1.docker.io"
HUB_INDEX = "https://index.docker.io"


class RegistryConfig:
    """How the engine reaches registries (from the daemon's flags / config).

    Args:
        insecure_registries: ``host[:port]`` names or CIDRs reached over plain HTTP.
        mirrors: endpoint URLs tried before Docker Hub for docker.io pulls.
        timeout: socket timeout in seconds for connect and each read.
        retries: extra attempts after a connection error or a 5xx.
        backoff: first retry delay in seconds, doubled each time up to ``max_backoff``.
        hub_index: Docker Hub's v1 index (search), overridable for a private index.
        certs_dir: docker's ``certs.d`` layout: ``DIR/<registry>/*.crt`` are extra CAs,
            ``*.cert`` + ``*.key`` a client certificate (e.g. ``/etc/docker/certs.d``).
    """

    def __init__(self, insecure_registries=(), mirrors=(), timeout=30.0, retries=3, backoff=0.25,
                 max_backoff=2.0, hub_index=HUB_INDEX, certs_dir=None):
        self.insecure_registries = list(insecure_registries)
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.hub_index = hub_index.rstrip("/")
        self.certs_dir = certs_dir

    def ssl_context(self, domain: str):
        """The system's trust store plus the registry's own CAs and client cert from ``certs_dir``."""
        import ssl  # only when a registry is reached: ssl is a large import for an idle engine
        ctx = ssl.create_default_context()
        d = os.path.join(self.certs_dir, domain) if self.certs_dir else None
        if d and os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                path = os.path.join(d, name)
                if name.endswith(".crt"):
                    ctx.load_verify_locations(cafile=path)
                elif name.endswith(".cert"):
                    key = path[:-5] + ".key"
                    if os.path.exists(key):
                        ctx.load_cert_chain(path, key)
        return ctx

    def is_insecure(self, domain: str) -> bool:
        """True for loopback hosts and configured insecure registries (plain HTTP)."""
        host = split_hostport(domain)[0]
        if host == "localhost" or domain in self.insecure_registries or host in self.insecure_registries:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if ip.is_loopback:
            return True
        for entry in self.insecure_registries:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def endpoint(self, domain: str) -> str:
        """The base URL for a registry domain: ``https://registry-1.docker.io`` for docker.io."""
        if domain == HUB_DOMAIN:
            return HUB_ENDPOINT
        return ("http://" if self.is_insecure(domain) else "https://") + domain


def split_hostport(netloc: str):
    """``host:5000`` → ("host", 5000); ``[::1]:5000`` → ("::1", 5000); no port → (host, None)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return netloc, None


def registry_domain(serveraddress: str) -> str:
    """The registry domain of a login server address (``https://index.docker.io/v1/`` → docker.io)."""
    s = (serveraddress or "").strip()
    if "://" in s:
        s = urllib.parse.urlsplit(s).netloc
    s = s.split("/", 1)[0].lower()
    if not s or s in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return HUB_DOMAIN
    return s
