"""What the host tells the engine about its network: registry proxies and extra CA certificates.

Behind a corporate proxy the engine's registry client must use it, and a TLS-inspecting proxy's
CA must be trusted. The host's ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are passed on unless
``vm.proxy``/``vm.no_proxy`` override them (``vm.proxy = "none"``: no proxy at all), and
``registry.ca`` names a PEM file or a folder of them. The native engine gets them as daemon flags;
a remote engine as a daemon.json-style file (``proxies``, ``registry-ca``) next to it.

A proxy on this host's loopback cannot be reached from another machine: for a VM it is rewritten
to the address the guest reaches the host at, for a remote host it is left out with a note.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import urllib.parse

from .errors import ConfigError

# Where a VM guest reaches this host's loopback: QEMU's user-mode network and VirtualBox's NAT
# both forward their gateway 10.0.2.2 to the host's 127.0.0.1.
VM_HOST_ALIAS = "10.0.2.2"


def _env(environ, name):
    return environ.get(name.upper()) or environ.get(name.lower()) or ""


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(value: str, origin: str) -> str:
    parts = urllib.parse.urlsplit(value if "://" in value else "http://" + value)
    try:
        parts.port
    except ValueError:
        raise ConfigError("the proxy %r (%s) has a bad port" % (value, origin),
                          hint="use http://HOST:PORT") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the proxy %r (%s) is not an http:// or https:// URL" % (value, origin),
                          hint="use http://HOST:PORT") from None
    return value


def proxies(config, environ=None, host_alias: str | None = None, remote: bool = False) -> tuple:
    """The engine's proxies (daemon.json's ``proxies`` keys) and notes for the user (pure).

    Args:
        config: a ``Config`` (``vm.proxy``, ``vm.no_proxy``).
        environ: the host's environment (default ``os.environ``).
        host_alias: for a VM, the address its guest reaches this host at: a loopback proxy
            is rewritten to it.
        remote: the engine runs on another host: a loopback proxy is left out (with a note).
    Returns:
        ({"http-proxy": URL or "", "https-proxy": …, "no-proxy": …}, [note, …]).
    Raises:
        ConfigError: a proxy that is not an http(s) URL.
    """
    environ = os.environ if environ is None else environ
    chosen = config.get("vm.proxy") or ""
    if chosen.lower() == "none":
        return {"http-proxy": "", "https-proxy": "", "no-proxy": ""}, []
    if chosen:
        http = https = _check_url(chosen, "vm.proxy")
    else:
        http = _check_url(_env(environ, "http_proxy"), "HTTP_PROXY") if _env(environ, "http_proxy") else ""
        https = _check_url(_env(environ, "https_proxy"), "HTTPS_PROXY") if _env(environ, "https_proxy") else ""
    out = {"http-proxy": http, "https-proxy": https,
           "no-proxy": config.get("vm.no_proxy") or _env(environ, "no_proxy")}
    notes = []
    for key in ("http-proxy", "https-proxy"):
        url = out[key]
        if not url:
            continue
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if not _is_loopback(parts.hostname or ""):
            continue
        if host_alias:
            netloc = parts.netloc.rsplit("@", 1)
            hostport = host_alias + (":%d" % parts.port if parts.port else "")
            out[key] = urllib.parse.urlunsplit(parts._replace(
                netloc=(netloc[0] + "@" + hostport) if len(netloc) == 2 else hostport))
        elif remote:
            notes.append("the %s %s is on this host's loopback, which the remote host cannot reach: not used "
                         "there (set one it can reach with `hostbridge config set vm.proxy URL`)" % (key, url))
            out[key] = ""
    return out, notes


def ca_files(config) -> list:
    """The extra CA files of ``registry.ca`` (a PEM file, or a folder's ``*.crt``/``*.pem``).

    Raises:
        ConfigError: the path does not exist, or a folder holds no certificate.
    """
    path = config.get("registry.ca") or ""
    if not path:
        return []
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith((".crt", ".pem"))]
        if not found:
            raise ConfigError("registry.ca %s holds no *.crt or *.pem file" % path, hint="point it at a PEM file")
        return found
    if not os.path.isfile(path):
        raise ConfigError("registry.ca %s does not exist" % path,
                          hint="fix it with `hostbridge config set registry.ca PATH` or unset it")
    return [path]


def daemon_flags(config, environ=None) -> list:
    """The daemon flags of the native engine (same host: proxies and CA paths as they are).

    Raises:
        ConfigError: see ``proxies`` and ``ca_files``.
    """
    px, _ = proxies(config, environ)
    if (config.get("vm.proxy") or "").lower() == "none":
        # Empty flags also keep the engine from reading HTTP(S)_PROXY in its own environment.
        argv = ["--http-proxy", "", "--https-proxy", "", "--no-proxy", ""]
    else:
        argv = []
        for key in ("http-proxy", "https-proxy", "no-proxy"):
            if px[key]:
                argv += ["--" + key, px[key]]
    for path in ca_files(config):
        argv += ["--registry-ca", path]
    return argv


def fingerprint(proxy_map: dict, ca_files=()) -> str:
    """A digest of the settings an engine was given (the proxies and the CA files' contents), so
    that ``up`` rewrites them, and restarts the engine, only when they changed.

    Raises:
        OSError: a CA file cannot be read.
    """
    digest = hashlib.sha256(json.dumps(proxy_map, sort_keys=True).encode())
    for path in ca_files:
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def daemon_json(proxy_map: dict, remote_cas) -> dict:
    """The daemon.json-style settings of a remote engine (pure).

    Args:
        proxy_map: from ``proxies``.
        remote_cas: the CA files' paths on the far side.
    """
    return {"proxies": dict(proxy_map), "registry-ca": list(remote_cas)}


__all__ = ["VM_HOST_ALIAS", "proxies", "ca_files", "daemon_flags", "fingerprint", "daemon_json"]
