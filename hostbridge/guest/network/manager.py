"""Container networking: networks (docker's API), and each container's endpoints while it runs.

The container manager calls the hooks: ``on_create`` (networks named, ``--ip`` reserved),
``on_start`` (veths plumbed into the new namespace before the process runs, ports published),
``on_stop`` (endpoints torn down) and ``on_remove`` (addresses released). The engine calls
``restore()`` after a restart (running containers get their links, proxies and rules back) and
``shutdown()`` when it stops (every rule, veth, bridge and proxy of ours removed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

from ..containers.views import _label_match
from ..errors import Conflict, Forbidden, GuestError, InvalidParameter, NotFound
from ..util import makedirs, new_id
from . import hosts, ipam, netdev, ports
from .firewall import Firewall, NetRule, PortRule
from .proxy import Proxy
from .store import PREDEFINED, NetworkStore, new_network, public

log = logging.getLogger("hostbridge.network")

DEFAULT_ROOT = "/var/lib/hostbridge"
_SHARED = ("host", "none")


def instance_names(root):
    """(chain prefix, default bridge device) for an engine root.

    The default root gets ``HOSTBRIDGE``/``hb0``; any other root (tests, a second engine) gets a
    tag from its path, so that engines side by side never touch each other's rules or bridge.
    """
    root = os.path.abspath(root)
    if root == DEFAULT_ROOT:
        return "HOSTBRIDGE", "hb0"
    tag = hashlib.sha256(root.encode()).hexdigest()[:6]
    return "HB-" + tag, "hb-" + tag  # iptables chain names stay under 29 characters


def _veth_name(cid, nid):
    # Derived, not random: after an engine crash the host end is found again without a state file.
    return "vh" + hashlib.sha256((cid + nid).encode()).hexdigest()[:11]


def _blank_endpoint(nid, cfg=None):
    cfg = cfg or {}
    ipam_cfg = cfg.get("IPAMConfig") or None
    return {"IPAMConfig": ipam_cfg, "Links": cfg.get("Links") or None, "Aliases": list(cfg.get("Aliases") or []) or None,
            "MacAddress": cfg.get("MacAddress") or "", "DriverOpts": cfg.get("DriverOpts") or None,
            "NetworkID": nid, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


_RUNTIME_FIELDS = {"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
                   "DNSNames": None}
_TOP_FIELDS = {"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
               "SandboxID": "", "SandboxKey": "", "Bridge": ""}


class NetworkManager:
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
        self.fw = Firewall(self.prefix)
        self.lock = threading.RLock()
        self.pools = {}
        self.live = {}      # cid → {"pid": N, "nets": {nid: {"veth", "ip", "ifname"}}}
        self.proxies = {}   # cid → [Proxy]
        self.portrules = {}  # cid → [PortRule]
        self._ensure_predefined(bip, bridge or default_bridge)

    # ---- networks ---------------------------------------------------------------------------
    def _pool(self, rec):
        pool = self.pools.get(rec["Id"])
        if pool is None:
            cfg = (rec["IPAM"]["Config"] or [{}])[0]
            pool = ipam.Pool(os.path.join(self.ipam_dir, rec["Id"] + ".json"), ipam.parse_subnet(cfg["Subnet"]),
                             cfg.get("Gateway"), cfg.get("IPRange"))
            self.pools[rec["Id"]] = pool
        return pool

    def _taken(self, skip=None):
        ours = {r["_bridge"] for r in self.store.all() if r.get("_bridge")}
        taken = []
        for r in self.store.all():
            for cfg in r["IPAM"]["Config"] or []:
                if r["Id"] != skip and cfg.get("Subnet"):
                    taken.append((ipam.parse_subnet(cfg["Subnet"]), "network %s" % r["Name"]))
        for net, dev in ipam.host_routes():
            if dev not in ours:
                taken.append((net, "a host route via %s" % (dev or "?")))
        return taken

    def _ensure_predefined(self, bip, bridge):
        for name, driver in (("host", "host"), ("none", "null")):
            if not self.store.by_name(name):
                self.store.add(new_network(name, driver))
        rec = self.store.by_name("bridge")
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
        self.store.add(new_network("bridge", "bridge", subnet, gateway, opts, bridge=bridge))

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
        if driver != "bridge":
            raise InvalidParameter("network driver %s is not supported by the hostbridge engine (use bridge)" % driver)
        if body.get("EnableIPv6"):
            raise InvalidParameter("IPv6 networks are not supported by the hostbridge engine")
        configs = [c for c in ((body.get("IPAM") or {}).get("Config") or []) if c]
        if len(configs) > 1:
            raise InvalidParameter("only one IPAM config (one IPv4 subnet) per network is supported")
        cfg = configs[0] if configs else {}
        if (cfg.get("Gateway") or cfg.get("IPRange")) and not cfg.get("Subnet"):
            raise InvalidParameter("a gateway or IP range needs a subnet (--subnet)")
        with self.lock:
            if self.store.by_name(name):
                raise Conflict("network with name %s already exists" % name)
            taken = self._taken()
            if cfg.get("Subnet"):
                subnet = ipam.parse_subnet(cfg["Subnet"])
                clash = ipam.find_clash(subnet, taken)
                if clash:
                    raise Conflict("invalid pool request: Pool overlaps with other one on this address space: "
                                   "%s overlaps %s (%s)" % (subnet, clash[0], clash[1]))
            else:
                subnet = ipam.pick_subnet(taken)
            nid = new_id()
            opts = dict(body.get("Options") or {})
            dev = opts.get("com.docker.network.bridge.name") or "br-" + nid[:12]
            if len(dev) > 15:
                raise InvalidParameter("bridge name %s is too long (15 characters at most)" % dev)
            gateway = cfg.get("Gateway") or str(next(subnet.hosts()))
            rec = new_network(name, "bridge", subnet, gateway, opts, body.get("Labels"), body.get("Internal"),
                              body.get("Attachable"), dev, cfg.get("IPRange"), nid)
            self._pool(rec)  # validates gateway and range before anything exists
            self.store.add(rec)
            try:
                self._up(rec)
                self._sync_fw()
            except GuestError:
                self._delete(rec)
                raise
        return {"Id": rec["Id"], "Warning": ""}

    def _up(self, rec):
        cfg = rec["IPAM"]["Config"][0]
        netdev.ensure_bridge(rec["_bridge"], cfg["Gateway"], ipam.parse_subnet(cfg["Subnet"]).prefixlen)

    def _delete(self, rec):
        self.store.remove(rec)
        pool = self.pools.pop(rec["Id"], None) or self._pool(rec)
        self.pools.pop(rec["Id"], None)
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
        """``POST /networks/prune``: remove user networks no container uses."""
        deleted = []
        with self.lock:
            used = self._networks_in_records()
            for rec in self.store.all():
                if rec["Name"] in PREDEFINED or rec["Id"] in used:
                    continue
                if not _label_filter(rec, filters):
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
            members = {}
            for cid, lv in self.live.items():
                if rec["Id"] not in lv["nets"]:
                    continue
                try:
                    c = self.containers.get(cid)
                except NotFound:
                    continue
                ep = (c.data["NetworkSettings"]["Networks"] or {}).get(rec["Name"]) or {}
                members[cid] = {"Name": c.name, "EndpointID": ep.get("EndpointID", ""),
                                "MacAddress": ep.get("MacAddress", ""),
                                "IPv4Address": "%s/%d" % (lv["nets"][rec["Id"]]["ip"], prefix), "IPv6Address": ""}
            out["Containers"] = members
        return out

    def list(self, filters=None):
        """``GET /networks``."""
        f = filters or {}
        for k in f:
            if k not in ("name", "id", "driver", "type", "label", "dangling", "scope"):
                raise InvalidParameter("invalid filter '%s'" % k)
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
            if not _label_filter(rec, f):
                continue
            out.append(self.inspect(rec["Id"]))
        return out

    # ---- container hooks ------------------------------------------------------------------
    def on_create(self, c, body):
        """Resolve the container's networks into ``NetworkSettings.Networks``; reserve ``--ip``."""
        try:
            self._resolve_endpoints(c, body)
        except NotFound as e:
            # not a 404: on a 404 from create the docker CLI goes off to pull the image
            raise InvalidParameter(str(e)) from None
        hosts.save_base(c.dir)

    def _resolve_endpoints(self, c, body):
        hc, cfg = c.host_config, c.config
        ports.requested(cfg, hc)
        nm = hc.get("NetworkMode") or "bridge"
        epc = dict(((body or {}).get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        if "default" in epc:  # the CLI names the default network "default"
            epc.setdefault("bridge", epc.pop("default"))
        nets = {}
        if nm.startswith("container:"):
            pass
        else:
            rec = self.store.get(nm)
            nets[rec["Name"]] = _blank_endpoint(rec["Id"], epc.pop(nm, None) or epc.pop(rec["Name"], None))
            if rec["Name"] not in _SHARED:
                for other, ecfg in epc.items():
                    orec = self.store.get(other)
                    if orec["Name"] in _SHARED:
                        raise InvalidParameter("container cannot be connected to network %s together with others"
                                               % orec["Name"])
                    nets[orec["Name"]] = _blank_endpoint(orec["Id"], ecfg)
        with self.lock:
            for name, ep in nets.items():
                self._reserve(c, self.store.get(ep["NetworkID"]), ep)
        c.data["NetworkSettings"]["Networks"] = nets

    def _reserve(self, c, rec, ep):
        wanted = (ep.get("IPAMConfig") or {}).get("IPv4Address")
        if not wanted:
            return None
        if rec["Name"] in PREDEFINED:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        return self._pool(rec).allocate(c.id, wanted)

    def on_remove(self, c, volumes=False):
        """Release every address the container holds."""
        with self.lock:
            for rec in self.store.all():
                if rec["Driver"] == "bridge":
                    self._pool(rec).release(c.id)

    def on_start(self, c, pid):
        """Plumb the container's endpoints into its namespace and publish its ports.

        Raises:
            Conflict: a host port is in use; Unavailable: ``ip``/``iptables`` failed. Either way
            nothing of this container's networking is left behind.
        """
        self._start(c, pid, restoring=False)

    def _start(self, c, pid, restoring):
        nm = c.host_config.get("NetworkMode") or "bridge"
        if nm in _SHARED or nm.startswith("container:"):  # the runtime brought lo up for "none"
            return
        with self.lock:
            try:
                links = netdev.links_in(pid) if restoring else []
                lv = {"pid": pid, "nets": {}}
                self.live[c.id] = lv
                for i, (name, ep) in enumerate(self._ordered(c)):
                    self._attach(c, pid, self.store.get(ep["NetworkID"]), ep, "eth%d" % i, i == 0, links)
                self._publish(c, restoring)
                self._fill_top(c, pid)
                self._refresh_hosts()
                self._sync_fw()
            except BaseException:
                self._teardown(c)
                raise

    def _ordered(self, c):
        nets = c.data["NetworkSettings"]["Networks"] or {}
        primary = self.store.get(c.host_config.get("NetworkMode") or "bridge")["Name"]
        return sorted(nets.items(), key=lambda kv: (kv[0] != primary, kv[0]))

    def _attach(self, c, pid, rec, ep, ifname, default_route, existing=()):
        pool = self._pool(rec)
        ip = pool.allocate(c.id, (ep.get("IPAMConfig") or {}).get("IPv4Address"))
        mac = ep.get("MacAddress") or c.config.get("MacAddress") or ipam.mac_for(ip)
        veth = _veth_name(c.id, rec["Id"])
        if ifname not in existing or not netdev.link_exists(veth):
            netdev.delete_link(veth)
            netdev.plumb(pid, rec["_bridge"], veth, ifname, ip, pool.subnet.prefixlen, mac,
                         str(pool.gateway) if default_route else None)
        self.live[c.id]["nets"][rec["Id"]] = {"veth": veth, "ip": ip, "ifname": ifname}
        user = rec["Name"] not in PREDEFINED
        aliases = [a for a in (ep.get("Aliases") or []) if a != c.id[:12]]
        ep.update(EndpointID=ep.get("EndpointID") or new_id(), Gateway=str(pool.gateway), IPAddress=ip,
                  IPPrefixLen=pool.subnet.prefixlen, MacAddress=mac, NetworkID=rec["Id"],
                  Aliases=(aliases + [c.id[:12]]) if user else (aliases or None),
                  DNSNames=([c.name] + aliases + [c.id[:12]]) if user else None)

    def _publish(self, c, restoring):
        ns = c.data["NetworkSettings"]
        exposed, bindings = ports.requested(c.config, c.host_config)
        primary = self.live[c.id]["nets"][self._ordered(c)[0][1]["NetworkID"]] if self.live[c.id]["nets"] else None
        old = ns.get("Ports") or {}
        published, proxies, rules = [], [], []
        self.proxies[c.id], self.portrules[c.id] = proxies, rules
        bridge = self.store.get(self._ordered(c)[0][1]["NetworkID"])["_bridge"] if primary else ""
        for b in bindings:
            host_port = b["host_port"]
            if restoring and not host_port:
                prev = [x for x in (old.get(b["key"]) or []) if (x.get("HostIp") or "0.0.0.0") == (b["host_ip"] or "0.0.0.0")]
                host_port = int(prev[0]["HostPort"]) if prev else 0
            p = Proxy(b["proto"], b["host_ip"], host_port, primary["ip"], b["port"])
            proxies.append(p)
            p.start()
            published.append((b["key"], b["host_ip"], p.host_port))
            rules.append(PortRule(b["proto"], b["host_ip"] or "0.0.0.0", p.host_port, primary["ip"], b["port"], bridge))
        ns["Ports"] = ports.ports_view(exposed, published)

    def _fill_top(self, c, pid):
        ns = c.data["NetworkSettings"]
        ns.update(SandboxID=hashlib.sha256(("%s/%d" % (c.id, pid)).encode()).hexdigest(),
                  SandboxKey="/proc/%d/ns/net" % pid)
        bridge_ep = (ns.get("Networks") or {}).get("bridge")
        if bridge_ep:  # docker fills the top-level fields for the default bridge only
            for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress"):
                ns[k] = bridge_ep[k]

    def on_stop(self, c):
        """Tear down the container's endpoints, proxies and rules (its namespace is gone)."""
        with self.lock:
            self._teardown(c)

    def _teardown(self, c):
        for p in self.proxies.pop(c.id, []):
            p.close()
        self.portrules.pop(c.id, None)
        lv = self.live.pop(c.id, None)
        for n in (lv or {}).get("nets", {}).values():
            try:
                netdev.delete_link(n["veth"])
            except GuestError:
                log.exception("could not delete %s", n["veth"])
        ns = c.data["NetworkSettings"]
        for ep in (ns.get("Networks") or {}).values():
            ep.update(_RUNTIME_FIELDS)
        ns.update(_TOP_FIELDS)
        ns["Ports"] = {}
        if lv:
            try:
                self._refresh_hosts()
                self._sync_fw()
            except GuestError:
                log.exception("network cleanup after %s", c.id)

    # ---- connect / disconnect ------------------------------------------------------------
    def connect(self, ref, body):
        """``POST /networks/{id}/connect``: join a container (running or not) to a network.

        Raises:
            NotFound: no such network or container; Forbidden: host/none networks, a container
            sharing another's namespace, or already connected.
        """
        body = body or {}
        c = self.containers.get(body.get("Container") or "")
        with c.lock, self.lock:
            rec = self.store.get(ref)
            nm = c.host_config.get("NetworkMode") or "bridge"
            if rec["Name"] in _SHARED or nm in _SHARED:
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            if nm.startswith("container:"):
                raise Forbidden("container sharing network namespace with another container or host cannot be "
                                "connected to any other network")
            nets = c.data["NetworkSettings"].setdefault("Networks", {})
            if rec["Name"] in nets:
                raise Forbidden("endpoint with name %s already exists in network %s" % (c.name, rec["Name"]))
            ep = _blank_endpoint(rec["Id"], body.get("EndpointConfig"))
            self._reserve(c, rec, ep)
            nets[rec["Name"]] = ep
            if c.running and c.id in self.live:
                try:
                    used = {n["ifname"] for n in self.live[c.id]["nets"].values()}
                    ifname = next("eth%d" % i for i in range(64) if "eth%d" % i not in used)
                    self._attach(c, self.live[c.id]["pid"], rec, ep, ifname, False)
                    self._refresh_hosts()
                except BaseException:
                    del nets[rec["Name"]]
                    self._pool(rec).release(c.id)
                    raise
            self.containers.store.save(c)
        self.containers.events.emit("network", "connect", rec["Id"], {"container": c.id, "name": rec["Name"],
                                                                       "type": rec["Driver"]})

    def disconnect(self, ref, body):
        """``POST /networks/{id}/disconnect``. Raises NotFound/Forbidden as docker does."""
        body = body or {}
        c = self.containers.get(body.get("Container") or "")
        with c.lock, self.lock:
            rec = self.store.get(ref)
            nets = c.data["NetworkSettings"].get("Networks") or {}
            if rec["Name"] not in nets:
                raise Forbidden("container %s is not connected to network %s" % (c.name, rec["Name"]))
            if rec["Name"] in _SHARED:
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            lv = self.live.get(c.id)
            if lv and rec["Id"] in lv["nets"]:
                netdev.delete_link(lv["nets"].pop(rec["Id"])["veth"])
            del nets[rec["Name"]]
            if rec["Name"] == "bridge":
                c.data["NetworkSettings"].update({k: v for k, v in _TOP_FIELDS.items() if k not in ("SandboxID", "SandboxKey")})
            self._pool(rec).release(c.id)
            self._refresh_hosts()
            self.containers.store.save(c)
        self.containers.events.emit("network", "disconnect", rec["Id"], {"container": c.id, "name": rec["Name"],
                                                                          "type": rec["Driver"]})

    # ---- names and rules ------------------------------------------------------------------
    def _refresh_hosts(self):
        members = {}  # nid → [(cid, ip, names)]
        records = {}
        for cid, lv in self.live.items():
            try:
                c = self.containers.get(cid)
            except NotFound:
                continue
            records[cid] = c
            eps = {ep["NetworkID"]: ep for ep in (c.data["NetworkSettings"].get("Networks") or {}).values()}
            for nid, n in lv["nets"].items():
                aliases = [a for a in (eps.get(nid, {}).get("Aliases") or []) if a != c.name]
                members.setdefault(nid, []).append((cid, n["ip"], [c.name] + aliases))
        builtin = {r["Id"] for r in self.store.all() if r["Name"] in PREDEFINED}
        for cid, c in records.items():
            lv = self.live[cid]
            own = []
            if lv["nets"]:
                first = self._ordered(c)[0][1]["NetworkID"]
                if first in lv["nets"]:
                    own.append((lv["nets"][first]["ip"], c.config.get("Hostname") or cid[:12]))
            peers = []
            for nid in lv["nets"]:
                if nid in builtin:
                    continue  # as docker: no name resolution between containers on the default bridge
                peers += [(ip, names) for other, ip, names in members.get(nid, []) if other != cid]
            hosts.write(c.dir, own, peers)

    def _sync_fw(self):
        nets = [NetRule(r["_bridge"], r["IPAM"]["Config"][0]["Subnet"], bool(r.get("Internal"))) for r in self.store.all()
                if r["Driver"] == "bridge" and r.get("_bridge")]
        rules = [p for rs in self.portrules.values() for p in rs]
        self.fw.apply(nets, rules)

    # ---- engine lifecycle -----------------------------------------------------------------
    def restore(self):
        """Bring bridges, rules, links and proxies back for the containers still running."""
        with self.lock:
            try:
                netdev.set_forwarding()
                for rec in self.store.all():
                    if rec["Driver"] == "bridge":
                        self._up(rec)
                self._sync_fw()
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


def _label_filter(rec, filters):
    return _label_match(rec.get("Labels") or {}, (filters or {}).get("label", []))
