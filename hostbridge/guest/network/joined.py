"""``--network container:X``: a container that joins another's network namespace.

The runtime joins the namespace (``bundle.namespaces_for``); this module gives the joining
container what dockerd gives it: X's ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``
(the same files, bind-mounted, so X's peers show up in both) and X's hostname. dockerd does this
at every start (the net container may have changed), and refuses the start while X is not
running. Options that would configure a network of the container's own are refused at create.
"""

from __future__ import annotations

from ..errors import Conflict, InvalidParameter, NotFound

PREFIX = "container:"

# dockerd's messages (runconfig), in its order of checking
_CONFLICTS = (
    (lambda cfg, hc: cfg.get("Hostname"), "conflicting options: hostname and the network mode"),
    (lambda cfg, hc: hc.get("Links"), "conflicting options: container type network can't be used with links. "
                                      "This would result in undefined behavior"),
    (lambda cfg, hc: hc.get("Dns"), "conflicting options: dns and the network mode"),
    (lambda cfg, hc: hc.get("ExtraHosts"), "conflicting options: custom host-to-IP mapping and the network mode"),
    (lambda cfg, hc: cfg.get("MacAddress"), "conflicting options: mac-address and the network mode"),
    (lambda cfg, hc: hc.get("PortBindings") or hc.get("PublishAllPorts"),
     "conflicting options: port publishing and the container type network mode"),
    (lambda cfg, hc: cfg.get("ExposedPorts"), "conflicting options: port exposing and the container type network mode"),
)


def net_container_ref(hc):
    """The X of ``NetworkMode: container:X``, or None for any other mode."""
    nm = hc.get("NetworkMode") or ""
    return nm[len(PREFIX):] if nm.startswith(PREFIX) else None


def check_create(c, body, get):
    """Refuse what cannot go with ``container:X`` and name X by its full id, as dockerd does.

    Args:
        c: the new container's record (its HostConfig is updated in place).
        body: the create request as sent (the user's own Config, before image defaults).
        get: ``get(ref)`` → a container record; raises NotFound.
    Raises:
        InvalidParameter: an option that configures networking (hostname, dns, ports, …).
    """
    ref = net_container_ref(c.host_config)
    if ref is None:
        return
    body = body or {}
    for conflicts, message in _CONFLICTS:
        if conflicts(body, body.get("HostConfig") or {}):
            raise InvalidParameter(message)
    try:
        c.host_config["NetworkMode"] = PREFIX + get(ref).id
    except NotFound:
        pass  # as dockerd: created all the same, its start says "No such container"


def adopt(c, get):
    """Before a start: point ``c``'s etc files and hostname at its net container's.

    Args:
        c: the container about to start (its record is updated; no-op unless ``container:X``).
        get: ``get(ref)`` → a container record.
    Raises:
        NotFound: X is gone; Conflict: X is not running (dockerd's message).
    """
    ref = net_container_ref(c.host_config)
    if ref is None:
        return
    other = get(ref)
    if other.id == c.id:
        raise Conflict("cannot join own network namespace: use another container than %s" % c.name)
    if not other.running:
        raise Conflict("cannot join network of a non running container: %s" % other.id)
    for key in ("HostnamePath", "HostsPath", "ResolvConfPath"):
        c.data[key] = other.data.get(key) or ""
    c.config["Hostname"] = other.config.get("Hostname") or other.id[:12]
    c.config["Domainname"] = other.config.get("Domainname") or ""
