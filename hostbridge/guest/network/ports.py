"""Published ports: what a container asks for (``-p``, ``-P``) and docker's ``Ports`` shape."""

from __future__ import annotations

import ipaddress
import os
import socket

from ..errors import InvalidParameter


def _key(port):
    """``"80"``/``"80/tcp"`` → ``("80/tcp", 80, "tcp")``."""
    num, _, proto = str(port).partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidParameter("invalid port %s: the protocol must be tcp or udp (sctp is not supported)" % port)
    try:
        n = int(num)
    except ValueError:
        raise InvalidParameter("invalid container port %s" % port) from None
    if not 0 < n < 65536:
        raise InvalidParameter("invalid container port %s: it must be 1-65535" % port)
    return "%d/%s" % (n, proto), n, proto


def requested(cfg, hc):
    """The bindings a container asks for.

    Args:
        cfg: its Config (``ExposedPorts``).
        hc: its HostConfig (``PortBindings``, ``PublishAllPorts``).
    Returns:
        ``(exposed, bindings)``: the set of ``"N/proto"`` keys, and a list of
        ``{"key", "port", "proto", "host_ip", "host_port", "host_port_end"}`` (host_port 0 = pick
        one; a range ends at host_port_end, else that equals host_port).
    Raises:
        InvalidParameter: a malformed port, host port or host address.
    """
    exposed = {_key(p)[0] for p in (cfg.get("ExposedPorts") or {})}
    bindings = []
    for port, binds in (hc.get("PortBindings") or {}).items():
        key, n, proto = _key(port)
        exposed.add(key)
        for b in binds or [{}]:
            host_ip = (b or {}).get("HostIp") or ""
            if host_ip:
                try:
                    host_ip = str(ipaddress.ip_address(host_ip.strip("[]")))
                except ValueError:
                    raise InvalidParameter("invalid host IP %r for port %s" % (host_ip, key)) from None
            hp = str((b or {}).get("HostPort") or "")
            lo, _, hi = hp.partition("-")
            try:
                host_port = int(lo) if lo else 0
                host_port_end = int(hi) if hi else host_port
            except ValueError:
                raise InvalidParameter("invalid host port %r for %s" % (hp, key)) from None
            if not 0 <= host_port <= host_port_end < 65536:
                raise InvalidParameter("invalid host port %s for %s" % (hp, key))
            # a range (-p 8000-8010:80): the first port of it that is free, as dockerd picks
            bindings.append({"key": key, "port": n, "proto": proto, "host_ip": host_ip, "host_port": host_port,
                             "host_port_end": host_port_end})
    if hc.get("PublishAllPorts"):
        bound = {b["key"] for b in bindings}
        for key in sorted(exposed - bound):
            _, n, proto = _key(key)
            bindings.append({"key": key, "port": n, "proto": proto, "host_ip": "", "host_port": 0, "host_port_end": 0})
    return exposed, bindings


def host_ipv6():
    """True when this host can listen on IPv6 (dockerd then publishes on ``::`` as well)."""
    return socket.has_ipv6 and os.path.exists("/proc/net/if_inet6")


def host_addresses(host_ip, ipv6=None):
    """The addresses one binding listens on: the one given, else ``0.0.0.0`` and ``::``.

    Args:
        host_ip: the binding's HostIp (``""`` for any).
        ipv6: whether the host has IPv6 (None: ask ``host_ipv6``).
    """
    if host_ip:
        return [host_ip]
    return ["0.0.0.0", "::"] if (host_ipv6() if ipv6 is None else ipv6) else ["0.0.0.0"]


def ports_view(exposed, published):
    """``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp", "HostPort"}], "81/tcp": None}``.

    Args:
        exposed: keys of exposed ports.
        published: ``[(key, host_ip, host_port)]`` actually bound.
    """
    out = {k: None for k in exposed}
    for key, host_ip, host_port in published:
        if out.get(key) is None:
            out[key] = []
        out[key].append({"HostIp": host_ip or "0.0.0.0", "HostPort": str(host_port)})
    return out
