"""Container networking: networks (docker's API), and each container's endpoints while it runs.

The container manager calls the hooks: ``on_create`` (networks named, ``--ip`` reserved),
``on_start`` (veths plumbed into the new namespace before the process runs, ports published),
``on_stop`` (endpoints torn down) and ``on_remove`` (addresses released). The engine calls
``restore()`` after a restart (running containers get their links, proxies and rules back) and
``shutdown()`` when it stops (every rule, veth, bridge and proxy of ours removed).
"""

from __future__ import annotations

import logging
import os
import threading

from .. import filters as _filters
from ..errors import NOT_SWARM_MANAGER, Conflict, Forbidden, GuestError, InvalidParameter, NotFound, Unavailable
from ..util import makedirs, new_id, parse_time
from . import ipam, netdev
from .endpoints import Endpoints
from .firewall import Firewall, NetRule
from .store import PREDEFINED, NetworkStore, check_options, new_network, public

log = logging.getLogger("hostbridge.network")

DEFAULT_ROOT = "/var/lib/hostbridge"


def instance_names(root):
    """(chain prefix, default bridge device) for an engine root.

    The default root gets ``HOSTBRIDGE``/``hb0``; any other root (tests, a second engine) gets a
    tag from its path, so that engines side by side never touch each other's rules or bridge.
    """
    root = os.path.abspath(root)
    if root == DEFAULT_ROOT:
        return "HOSTBRIDGE", "hb0"
    import hashlib  # here: the default root needs none (hashlib loads OpenSSL: ~60 ms in an emulated guest)
    tag = hashlib.sha256(root.encode()).hexdigest()[:6]
    return "HB-" + tag, "hb-" + tag  # iptables chain names stay under 29 characters


class NetworkManager(Endpoints):
    """Networks and endpoints of one engine.

    Args:
        root: the engine's state root.
        containers: the ContainerManager (records are read and saved through its store).
        bip: the default bridge's ``GATEWAY/PREFIX`` (dockerd's ``--bip``), or None to pick one.
        bridge: the default bridge's device name, or None for the root's default.
    """

    def __init__(self, root, containers, bip=None, bridge=None):
        self.containers = containers
        base = makedirs(os.path.join(root, "network"))
        self.store = NetworkStore(os.path.join(base, "networks"))
        self.ipam_dir = makedirs(os.path.join(base, "ipam"))
        self.prefix, default_bridge = instance_names(root)
        self.fw = Firewall(self.prefix, record=os.path.join(base, "firewall-boot"))
        self.lock = threading.RLock()
        self.pools = {}
        self.live = {}      # cid → {"pid": N, "nets": {nid: {"veth", "ip", "ifname"}}}
        self.proxies = {}   # cid → [Proxy]
        self.portrules = {}  # cid → [PortRule]
        self.notes = []  # what the engine changed on its own at start (a moved default bridge), for /info
        self._moved_off = ""  # why the default bridge left its subnet at this start ("" when it did not)
        self._moved_id = None  # the default bridge's id when it moved (it keeps it)
        self._made = set()  # bridges made by this engine's start (restore() need not bring them up again)
        self._ensure_predefined(bip, bridge or default_bridge)

    # ---- networks ---------------------------------------------------------------------------
    def _pool(self, rec):
        pool = self.pools.get(rec["Id"])
        if pool is None:
            cfg = (rec["IPAM"]["Config"] or [{}])[0]
            pool = ipam.Pool(os.path.join(self.ipam_dir, rec["Id"] + ".json"), ipam.parse_subnet(cfg["Subnet"]),
                             cfg.get("Gateway"), cfg.get("IPRange"), (cfg.get("AuxiliaryAddresses") or {}).values())
            self.pools[rec["Id"]] = pool
        return pool

    def _pool6(self, rec):
        """The IPv6 addresses of an ``--ipv6`` network, or None (no IPv6 on it)."""
        if not rec.get("EnableIPv6"):
            return None
        key = rec["Id"] + "-v6"
        pool = self.pools.get(key)
        if pool is None:
            cfg = ipam.split_configs(rec["IPAM"]["Config"] or [])[1]
            if not cfg:
                return None
            pool = ipam.Pool(os.path.join(self.ipam_dir, key + ".json"), ipam.parse_subnet(cfg["Subnet"], versions=(6,)),
                             cfg.get("Gateway"), cfg.get("IPRange"))
            self.pools[key] = pool
        return pool

    def _release(self, rec, owner):
        """Free the addresses ``owner`` holds on ``rec`` (both families; none off a bridge)."""
        if rec["Driver"] != "bridge":
            return
        for pool in (self._pool(rec), self._pool6(rec)):
            if pool:
                pool.release(owner)

    def _taken(self, skip=None):
        ours = {r["_bridge"] for r in self.store.all() if r.get("_bridge")}
        taken = []
        for r in self.store.all():
            for cfg in r["IPAM"]["Config"] or []:
                if r["Id"] != skip and cfg.get("Subnet"):
                    taken.append((ipam.parse_subnet(cfg["Subnet"], versions=(4, 6)), "network %s" % r["Name"]))
        for net, dev in ipam.host_routes() + ipam.host_routes(family=6):
            if dev not in ours:
                taken.append((net, "a host route via %s" % (dev or "?")))
        return taken

    def _ensure_predefined(self, bip, bridge):
        for name, driver in (("host", "host"), ("none", "null")):
            if not self.store.by_name(name):
                self.store.add(new_network(name, driver))
        rec = self.store.by_name("bridge")
        if rec and not bip:
            rec = self._move_if_clashing(rec)
        if rec and bip and rec["IPAM"]["Config"][0]["Subnet"] != str(ipam.parse_subnet(bip, "--bip")):
            if self._pool(rec).owners():
                log.warning("--bip %s ignored: containers still hold addresses on %s", bip, rec["IPAM"]["Config"])
            else:
                self._pool(rec).destroy()
                self.pools.pop(rec["Id"], None)
                self.store.remove(rec)
                rec = None
        if rec:
            return
        with ipam.host_lock():
            self._create_default_bridge(bip, bridge)

    def _move_if_clashing(self, rec):
        """The default bridge, or None once forgotten because a host route now overlaps its subnet
        (a VPN came up since it was chosen) and no container holds an address on it: it is then
        created again on a free range, with a note in ``/info``'s warnings."""
        subnet = ipam.parse_subnet(rec["IPAM"]["Config"][0]["Subnet"])
        ours = {r["_bridge"] for r in self.store.all() if r.get("_bridge")}
        clash = ipam.find_clash(subnet, [(net, dev) for net, dev in ipam.host_routes() if dev not in ours])
        if clash is None:
            return rec
        route, dev = clash
        if self._pool(rec).owners():
            self.notes.append("WARNING: the default bridge network's subnet %s overlaps the host route %s via %s; "
                              "it stays while containers use it (remove them and restart the engine to move it)"
                              % (subnet, route, dev))
            return rec
        self._pool(rec).destroy()
        self.pools.pop(rec["Id"], None)
        self.store.remove(rec)
        self._moved_off = "%s, which overlaps the host route %s via %s" % (subnet, route, dev)
        self._moved_id = rec["Id"]  # created containers name the network by its id: it keeps it
        return None

    def _create_default_bridge(self, bip, bridge):
        if bip:
            subnet = ipam.parse_subnet(bip, "--bip")
            gateway = bip.split("/")[0] if "/" in bip and bip.split("/")[0] != str(subnet.network_address) else None
        else:
            subnet, gateway = ipam.pick_subnet(self._taken()), None
        gateway = gateway or str(next(subnet.hosts()))
        opts = {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0", "com.docker.network.bridge.name": bridge,
                "com.docker.network.driver.mtu": "1500"}
        rec = self.store.add(new_network("bridge", "bridge", subnet, gateway, opts, bridge=bridge,
                                         nid=self._moved_id))
        self._up(rec)  # its route now tells the next engine that this subnet is taken
        self._made.add(rec["Id"])
        if self._moved_off:
            self.notes.append("WARNING: the default bridge network moved to %s, off %s" % (subnet, self._moved_off))

    def create_network(self, body):
        """``POST /networks/create``: a bridge network with its own subnet and bridge device.

        Returns:
            ``{"Id": …, "Warning": ""}``.
        Raises:
            InvalidParameter: bad name, driver, subnet or gateway; Conflict: the name is taken
            or the subnet overlaps another network or a host route (named in the message).
        """
        if not isinstance(body, dict) or not body.get("Name"):
            raise InvalidParameter("network name is required")
        name = body["Name"]
        driver = body.get("Driver") or "bridge"
        if name in PREDEFINED:
            raise Forbidden("%s is a pre-defined network and cannot be created" % name)
        scope = body.get("Scope") or ""
        # dockerd's answers outside a swarm, in its order
        if body.get("Ingress") and scope != "global":
            raise Forbidden("Ingress network can only be global scope network")
        if scope == "swarm":
            raise Forbidden("cannot create a swarm scoped network when swarm is not active")
        if scope == "global" or driver == "overlay":
            raise Unavailable(NOT_SWARM_MANAGER)
        if driver != "bridge":
            raise InvalidParameter("network driver %s is not supported by the hostbridge engine (use bridge)" % driver)
        configs = [c for c in ((body.get("IPAM") or {}).get("Config") or []) if c]
        cfg, cfg6 = ipam.split_configs(configs)
        if len(configs) > bool(cfg) + bool(cfg6):
            raise Forbidden("bridge driver doesn't support multiple subnets")
        if (cfg.get("Gateway") or cfg.get("IPRange")) and not cfg.get("Subnet"):
            raise InvalidParameter("a gateway or IP range needs a subnet (--subnet)")
        if body.get("EnableIPv6") and not cfg6:
            # dockerd 20.10 has no default IPv6 pool (and says 404)
            raise NotFound("could not find an available, non-overlapping IPv6 address pool among the defaults "
                           "to assign to the network: give an IPv6 subnet (--subnet fd00:…/64)")
        with self.lock, ipam.host_lock():
            if self.store.by_name(name):
                raise Conflict("network with name %s already exists" % name)
            taken = self._taken()
            if cfg.get("Subnet"):
                subnet = self._unclashed(cfg["Subnet"], taken, (4,))
            else:
                subnet = ipam.pick_subnet(taken)
            if cfg6:
                self._unclashed(cfg6["Subnet"], taken, (6,))
            nid = new_id()
            opts = dict(body.get("Options") or {})
            check_options(opts)
            dev = opts.get("com.docker.network.bridge.name") or "br-" + nid[:12]
            if len(dev) > 15:
                raise InvalidParameter("bridge name %s is too long (15 characters at most)" % dev)
            # as dockerd: a subnet given without a gateway lists none; a subnet picked lists its gateway
            gateway = cfg.get("Gateway") or (None if cfg.get("Subnet") else str(next(subnet.hosts())))
            rec = new_network(name, "bridge", subnet, gateway, opts, body.get("Labels"), body.get("Internal"),
                              body.get("Attachable"), dev, cfg.get("IPRange"), nid,
                              (body.get("EnableIPv6"), cfg6.get("Subnet"), cfg6.get("Gateway")),  # as given, as dockerd
                              cfg.get("AuxiliaryAddresses"))
            self._pool(rec)  # validates gateway and range before anything exists
            self._pool6(rec)
            self.store.add(rec)
            try:
                self._up(rec)
                self._sync_fw()
            except GuestError:
                self._delete(rec)
                raise
        return {"Id": rec["Id"], "Warning": ""}

    @staticmethod
    def _unclashed(text, taken, versions):
        subnet = ipam.parse_subnet(text, versions=versions)
        clash = ipam.find_clash(subnet, taken)
        if clash:
            raise Forbidden("invalid pool request: Pool overlaps with other one on this address space: "
                            "%s overlaps %s (%s)" % (subnet, clash[0], clash[1]))
        return subnet

    def _up(self, rec):
        pool, pool6 = self._pool(rec), self._pool6(rec)
        netdev.ensure_bridge(rec["_bridge"], str(pool.gateway), pool.subnet.prefixlen,
                             gateway6=pool6 and "%s/%d" % (pool6.gateway, pool6.subnet.prefixlen))

    def _delete(self, rec):
        self.store.remove(rec)
        pools = [self._pool(rec), self._pool6(rec)]
        self.pools.pop(rec["Id"], None)
        self.pools.pop(rec["Id"] + "-v6", None)
        for pool in pools:
            if pool:
                pool.destroy()
        netdev.delete_link(rec["_bridge"])

    def remove_network(self, ref):
        """``DELETE /networks/{id}``. Raises Forbidden for predefined or in-use networks."""
        with self.lock:
            rec = self.store.get(ref)
            if rec["Name"] in PREDEFINED:
                raise Forbidden("%s is a pre-defined network and cannot be removed" % rec["Name"])
            users = [cid for cid, lv in self.live.items() if rec["Id"] in lv["nets"]]
            if users:
                raise Forbidden("error while removing network: network %s id %s has active endpoints "
                                "(containers %s): stop or disconnect them first"
                                % (rec["Name"], rec["Id"], ", ".join(c[:12] for c in users)))
            self._delete(rec)
            self._sync_fw()
        return rec

    def prune(self, filters=None):
        """``POST /networks/prune``: remove user networks no container uses.

        Filters: ``until`` (created before), ``label``, ``label!``, as dockerd's.
        """
        f = _filters.normalize(filters, ("until", "label", "label!"))
        limit = _filters.until(f)  # a bad value is refused before anything goes
        deleted = []
        with self.lock:
            used = self._networks_in_records()
            for rec in self.store.all():
                if rec["Name"] in PREDEFINED or rec["Id"] in used:
                    continue
                if not _filters.labels_match(rec.get("Labels"), f):
                    continue
                if limit is not None and parse_time(rec["Created"]).timestamp() >= limit:
                    continue
                self._delete(rec)
                deleted.append(rec["Name"])
            self._sync_fw()
        return {"NetworksDeleted": deleted or None}

    def _networks_in_records(self):
        used = set()
        for c in self.containers.store.all():
            for ep in (c.data["NetworkSettings"].get("Networks") or {}).values():
                used.add(ep.get("NetworkID"))
        return used

    def inspect(self, ref):
        """``GET /networks/{id}``: docker's Network with its running containers."""
        with self.lock:
            rec = self.store.get(ref)
            out = public(rec)
            prefix = ipam.parse_subnet(rec["IPAM"]["Config"][0]["Subnet"]).prefixlen if rec["IPAM"]["Config"] else 0
            pool6 = self._pool6(rec)
            members = {}
            for cid, lv in self.live.items():
                if rec["Id"] not in lv["nets"]:
                    continue
                try:
                    c = self.containers.get(cid)
                except NotFound:
                    continue
                ep = (c.data["NetworkSettings"]["Networks"] or {}).get(rec["Name"]) or {}
                n = lv["nets"][rec["Id"]]
                members[cid] = {"Name": c.name, "EndpointID": ep.get("EndpointID", ""),
                                "MacAddress": ep.get("MacAddress", ""), "IPv4Address": "%s/%d" % (n["ip"], prefix),
                                "IPv6Address": "%s/%d" % (n["ip6"], pool6.subnet.prefixlen) if n.get("ip6") else ""}
            out["Containers"] = members
        return out

    def list(self, filters=None):
        """``GET /networks``."""
        f = filters or {}
        _filters.check_names(f, ("name", "id", "driver", "type", "label", "dangling", "scope"))
        used = self._networks_in_records() if "dangling" in f else set()
        out = []
        for rec in sorted(self.store.all(), key=lambda r: r["Created"]):
            if "name" in f and not any(x in rec["Name"] for x in f["name"]):
                continue
            if "id" in f and not any(rec["Id"].startswith(x) for x in f["id"]):
                continue
            if "driver" in f and rec["Driver"] not in f["driver"]:
                continue
            if "scope" in f and "local" not in f["scope"]:
                continue
            if "type" in f and ("builtin" if rec["Name"] in PREDEFINED else "custom") not in f["type"]:
                continue
            if "dangling" in f:
                want = f["dangling"][0] in ("1", "true")
                if want != (rec["Name"] not in PREDEFINED and rec["Id"] not in used):
                    continue
            if not _filters.label_match(rec.get("Labels"), f.get("label")):
                continue
            out.append(self.inspect(rec["Id"]))
        return out

    def _sync_fw(self):
        nets = [NetRule(r["_bridge"], r["IPAM"]["Config"][0]["Subnet"], bool(r.get("Internal"))) for r in self.store.all()
                if r["Driver"] == "bridge" and r.get("_bridge")]
        rules = [p for rs in self.portrules.values() for p in rs]
        self.fw.apply(nets, rules)

    def _sync_fw_into(self, failed):
        try:
            self._sync_fw()
        except BaseException as e:  # handed to the thread that waits for this one
            failed.append(e)

    # ---- engine lifecycle -----------------------------------------------------------------
    def restore(self):
        """Bring bridges, rules, links and proxies back for the containers still running."""
        with self.lock:
            try:
                netdev.set_forwarding()
                # The rules name the bridges and need none of them to exist: the firewall's
                # process runs beside the bridges' (an engine's start under emulation waits on both).
                failed = []
                fw = threading.Thread(target=self._sync_fw_into, args=(failed,), name="firewall-restore")
                fw.start()
                try:
                    for rec in self.store.all():
                        if rec["Driver"] == "bridge" and rec["Id"] not in self._made:
                            self._up(rec)
                finally:
                    fw.join()
                if failed:
                    raise failed[0]
            except BaseException:
                self.shutdown()  # an engine that cannot start leaves no bridge or rule behind
                raise
        for c in self.containers.store.all():
            with c.lock:
                pid = c.state.get("Pid")
                if c.running and pid and os.path.exists("/proc/%d/ns/net" % pid):
                    try:
                        self._start(c, pid, restoring=True)
                        self.containers.store.save(c)
                    except GuestError:
                        log.exception("could not restore networking of %s", c.id)

    def shutdown(self):
        """Remove every proxy, veth, bridge and rule of this engine (containers keep running)."""
        with self.lock:
            for cid in list(self.proxies):
                for p in self.proxies.pop(cid):
                    p.close()
            for lv in self.live.values():
                for n in lv["nets"].values():
                    try:
                        netdev.delete_link(n["veth"])
                    except GuestError:
                        log.exception("could not delete %s", n["veth"])
            self.live.clear()
            self.portrules.clear()
            for rec in self.store.all():
                if rec.get("_bridge"):
                    try:
                        netdev.delete_link(rec["_bridge"])
                    except GuestError:
                        log.exception("could not delete bridge %s", rec["_bridge"])
            self.fw.clear()
