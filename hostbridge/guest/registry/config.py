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
        proxies: a ``Proxies`` (none by default: the daemon builds it from flags, config, env).
        extra_ca: CA files (PEM) or folders of them (``*.crt``/``*.pem``) trusted for every
            registry besides the system's (a corporate TLS-inspecting proxy's CA).
    """

    def __init__(self, insecure_registries=(), mirrors=(), timeout=30.0, retries=3, backoff=0.25,
                 max_backoff=2.0, hub_index=HUB_INDEX, certs_dir=None, proxies=None, extra_ca=()):
        self.insecure_registries = list(insecure_registries)
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.hub_index = hub_index.rstrip("/")
        self.certs_dir = certs_dir
        self.proxies = proxies or Proxies()
        self.extra_ca = list(extra_ca)

    def ssl_context(self, domain: str):
        """The system's trust store plus ``extra_ca`` and the registry's own CAs and client cert
        from ``certs_dir``."""
        import ssl  # only when a registry is reached: ssl is a large import for an idle engine
        ctx = ssl.create_default_context()
        for path in ca_files(self.extra_ca):
            ctx.load_verify_locations(cafile=path)
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


def ca_files(paths) -> list:
    """The PEM files among ``paths``: files as given, folders' ``*.crt``/``*.pem`` sorted."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, n) for n in sorted(os.listdir(p)) if n.endswith((".crt", ".pem"))]
        elif p:
            out.append(p)
    return out


class Proxies:
    """HTTP(S) proxies for registry traffic, chosen per URL as Go's ProxyFromEnvironment does
    (so as dockerd): ``https_proxy`` for https URLs, ``http_proxy`` for http, none for loopback
    hosts or hosts matched by ``no_proxy``.

    Args:
        http: proxy URL for http:// requests ("" for none).
        https: proxy URL for https:// requests ("" for none).
        no_proxy: comma-separated ``*``, host names (a leading dot or not: subdomains match too),
            ``host:port``, IP addresses or CIDRs.
    """

    def __init__(self, http="", https="", no_proxy=""):
        self.http, self.https, self.no_proxy = http or "", https or "", no_proxy or ""

    @classmethod
    def from_env(cls, env) -> "Proxies":
        """From HTTP_PROXY/HTTPS_PROXY/NO_PROXY (upper case first, then lower, as Go)."""
        def get(name):
            return env.get(name.upper()) or env.get(name.lower()) or ""
        return cls(get("http_proxy"), get("https_proxy"), get("no_proxy"))

    def to_dict(self) -> dict:
        """daemon.json's ``proxies`` shape."""
        return {"http-proxy": self.http, "https-proxy": self.https, "no-proxy": self.no_proxy}

    def info(self) -> dict:
        """``/info``'s HttpProxy/HttpsProxy/NoProxy, with credentials masked as dockerd does."""
        def mask(url):
            parts = urllib.parse.urlsplit(url)
            if parts.username is None:
                return url
            host = parts.netloc.rsplit("@", 1)[1]
            return urllib.parse.urlunsplit(parts._replace(netloc="xxxxx:xxxxx@" + host))
        return {"HttpProxy": mask(self.http), "HttpsProxy": mask(self.https), "NoProxy": self.no_proxy}

    def _bypass(self, host: str, port) -> bool:
        host = host.lower().strip("[]")
        if host == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_loopback:
            return True
        for entry in (e.strip().lower() for e in self.no_proxy.split(",")):
            if not entry:
                continue
            if entry == "*":
                return True
            if ip is not None and "/" in entry:
                try:
                    if ip in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            ehost, eport = split_hostport(entry)
            if eport is not None and eport != port:
                continue
            ehost = ehost.strip("[]")
            if host == ehost.lstrip(".") or (not ip and host.endswith("." + ehost.lstrip("."))):
                return True
        return False

    def for_url(self, url: str):
        """The proxy for ``url`` as a split URL (``.hostname``, ``.port``, ``.username``…), or None."""
        parts = urllib.parse.urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http if parts.scheme == "http" else ""
        if not proxy:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._bypass(parts.hostname or "", port):
            return None
        if "://" not in proxy:
            proxy = "http://" + proxy  # Go reads a bare host:port as http://
        return urllib.parse.urlsplit(proxy)


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
