"""Bare network namespaces on an engine network: a build's RUN steps.

A RUN step of ``docker build`` is no container record, so the manager's container hooks do not
apply; it still needs what a container on the same network gets: an address from the network's
IPAM, a veth on its bridge (the network's NAT and isolation rules then cover it, as they cover
any address of the subnet), a default route through the gateway. Three calls, one owner id:

- ``reserve(manager, owner, network)`` before the namespace exists (the address, and the
  network's ``peers``, go into the step's /etc/hosts, written before its container is created);
- ``plumb(manager, attachment, pid)`` once the process ``pid`` holds the namespace;
- ``release(manager, owner)`` afterwards, also after a failure, a cancel or an engine crash (it
  needs only the owner id): the veth and every address ``owner`` holds go. Idempotent.

The namespace itself belongs to the process: it goes when the process exits, and takes the
inner end of the veth with it.
"""

from __future__ import annotations

import hashlib

from ..errors import InvalidParameter, NotFound
from . import ipam, netdev
from .store import PREDEFINED


class Attachment:
    """An address reserved on a network for ``owner``.

    Attributes:
        owner: the id the address is held for (a build step's id).
        network: the network's name; ``network_id`` its id; ``bridge`` its bridge device.
        ip, prefixlen, gateway, mac: the interface's settings (strings, int).
        veth: the host end's device name.
    """

    def __init__(self, owner, rec, ip, prefixlen, gateway):
        self.owner, self.network, self.network_id = owner, rec["Name"], rec["Id"]
        self.bridge = rec["_bridge"]
        self.ip, self.prefixlen, self.gateway = ip, prefixlen, gateway
        self.mac = ipam.mac_for(ip)
        self.veth = veth_name(owner)


def veth_name(owner: str) -> str:
    """The host end of ``owner``'s veth: derived, so that cleanup needs only the owner id."""
    return "vb" + hashlib.sha256(owner.encode()).hexdigest()[:11]


def bridge_network(manager, ref: str) -> dict:
    """The record of bridge network ``ref`` (a name or id) a bare namespace may join.

    Raises:
        NotFound: no such network.
        InvalidParameter: ``host`` or ``none`` (no bridge to join).
    """
    rec = manager.store.get(ref)
    if rec["Driver"] != "bridge" or not rec.get("_bridge"):
        raise InvalidParameter("network %s has no bridge to attach to" % rec["Name"])
    return rec


def reserve(manager, owner: str, network: str = "bridge") -> Attachment:
    """Allocate ``owner`` an address on ``network`` (the default bridge unless named).

    Raises:
        NotFound, InvalidParameter: see ``bridge_network``; Conflict: the subnet is full.
    """
    with manager.lock:
        rec = bridge_network(manager, network)
        pool = manager._pool(rec)
        ip = pool.allocate(owner)
        return Attachment(owner, rec, ip, pool.subnet.prefixlen, str(pool.gateway))


def peers(manager, att: Attachment) -> list:
    """``[(ip, [name, aliases…])]`` of the running containers on the attachment's network, for
    the namespace's /etc/hosts, as a container on it gets them (none on the default bridge)."""
    if att.network in PREDEFINED:
        return []
    out = []
    with manager.lock:
        for cid, lv in manager.live.items():
            member = lv["nets"].get(att.network_id)
            try:
                c = manager.containers.get(cid)
            except NotFound:
                continue
            if member:
                ep = (c.data["NetworkSettings"].get("Networks") or {}).get(att.network) or {}
                out.append((member["ip"], [c.name] + [a for a in ep.get("Aliases") or [] if a != c.name]))
    return out


def plumb(manager, att: Attachment, pid: int) -> None:
    """Give ``pid``'s network namespace ``eth0`` on the attachment's bridge, lo up, and a
    default route through the gateway.

    Raises:
        Unavailable: ``ip`` failed (nothing of the veth is left).
    """
    with manager.lock:
        netdev.delete_link(att.veth)  # a crashed engine's, of the same owner
        netdev.plumb(pid, att.bridge, att.veth, "eth0", att.ip, att.prefixlen, att.mac, att.gateway)


def release(manager, owner: str) -> None:
    """Remove ``owner``'s veth and free its addresses on every network (no error when it has
    none)."""
    with manager.lock:
        netdev.delete_link(veth_name(owner))
        for rec in manager.store.all():
            if rec["Driver"] == "bridge" and rec["IPAM"]["Config"]:
                manager._pool(rec).release(owner)

