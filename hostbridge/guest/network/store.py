"""Network records: docker's Network shape, one file per network in ``ROOT/network/networks/``.

Keys starting with ``_`` are ours (the bridge device) and are stripped from API views.
"""

from __future__ import annotations

import copy
import os
import re
import threading

from ..errors import Conflict, InvalidParameter, NotFound
from ..util import makedirs, new_id, now_rfc3339, read_json, write_json

PREDEFINED = ("bridge", "host", "none")
# dockerd takes any name (spaces, slashes, colons…); records are filed by id. Control characters
# are refused: they would only garble listings and logs.
_NAME_OK = re.compile(r"^[^\x00-\x1f\x7f]+$")


def new_network(name, driver, subnet=None, gateway=None, options=None, labels=None, internal=False,
                attachable=False, bridge=None, ip_range=None, nid=None, ipv6=None, aux=None):
    """A docker-shaped network record.

    The IPv4 config lists a gateway when one is given (a subnet given without one shows none, as
    with dockerd: the pool then uses the first address). ``ipv6`` is ``(enabled, subnet, gateway
    or None)`` for a network given an IPv6 subnet, listed after the IPv4 config in the same way.
    ``aux``: the ``--aux-address`` map (addresses never handed out).
    """
    cfg = []
    if subnet:
        c = {"Subnet": str(subnet)}
        if ip_range:
            c["IPRange"] = str(ip_range)
        if gateway:
            c["Gateway"] = str(gateway)
        if aux:
            c["AuxiliaryAddresses"] = dict(aux)
        cfg.append(c)
    enabled, subnet6, gateway6 = ipv6 or (False, None, None)
    if subnet6:
        cfg.append({"Subnet": str(subnet6), **({"Gateway": gateway6} if gateway6 else {})})
    return {
        "Name": name, "Id": nid or new_id(), "Created": now_rfc3339(), "Scope": "local", "Driver": driver,
        "EnableIPv6": bool(enabled), "IPAM": {"Driver": "default", "Options": None if driver != "bridge" or name == "bridge" else {},
                                      "Config": cfg},
        "Internal": bool(internal), "Attachable": bool(attachable), "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": dict(options or {}),
        "Labels": dict(labels or {}), "_bridge": bridge or "",
    }


ICC = "com.docker.network.bridge.enable_icc"
_TRUE, _FALSE = ("1", "t", "T", "true", "TRUE", "True"), ("0", "f", "F", "false", "FALSE", "False")


def check_options(opts):
    """Validate the driver options we act on (Go's ParseBool spellings, as dockerd).

    Raises:
        InvalidParameter: an option's value is not a boolean.
    """
    value = (opts or {}).get(ICC)
    if value is not None and value not in _TRUE + _FALSE:
        raise InvalidParameter("invalid value %r for %s: use true or false" % (value, ICC))


def icc_enabled(rec):
    """False when the network was created with ``enable_icc=false`` (no container-to-container)."""
    return (rec.get("Options") or {}).get(ICC, "true") not in _FALSE


def public(rec):
    return {k: copy.deepcopy(v) for k, v in rec.items() if not k.startswith("_")}


class NetworkStore:
    """Networks by id, name or unique id prefix; every change written atomically."""

    def __init__(self, directory):
        self.dir = makedirs(directory)
        self._lock = threading.RLock()
        self._by_id = {}
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".json"):
                rec = read_json(os.path.join(self.dir, f))
                if rec and rec.get("Id") + ".json" == f:
                    self._by_id[rec["Id"]] = rec

    def all(self):
        with self._lock:
            return list(self._by_id.values())

    def by_name(self, name):
        with self._lock:
            for rec in self._by_id.values():
                if rec["Name"] == name:
                    return rec
        return None

    def get(self, ref):
        """A network by full id, exact name, or unique id prefix.

        Raises:
            NotFound: docker's ``network REF not found``.
        """
        with self._lock:
            if ref in self._by_id:
                return self._by_id[ref]
            rec = self.by_name(ref)
            if rec:
                return rec
            found = [r for i, r in self._by_id.items() if ref and i.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidParameter("network %s is ambiguous (%d matches found on id prefix)" % (ref, len(found)))
        raise NotFound("network %s not found" % ref)

    def add(self, rec):
        name = rec["Name"]
        if not _NAME_OK.match(name or ""):
            raise InvalidParameter("invalid network name %r: control characters are not allowed" % name)
        with self._lock:
            if self.by_name(name):
                raise Conflict("network with name %s already exists" % name)
            self._by_id[rec["Id"]] = rec
            self.save(rec)
        return rec

    def save(self, rec):
        write_json(os.path.join(self.dir, rec["Id"] + ".json"), rec)

    def remove(self, rec):
        with self._lock:
            self._by_id.pop(rec["Id"], None)
            try:
                os.unlink(os.path.join(self.dir, rec["Id"] + ".json"))
            except FileNotFoundError:
                pass
