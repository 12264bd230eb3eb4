"""A container's endpoints: its veths, addresses, published ports and /etc/hosts entries.

``Endpoints`` is the half of ``NetworkManager`` that the container manager's hooks and
``connect``/``disconnect`` drive; it uses the manager's store, pools, firewall and lock.
"""

from __future__ import annotations

import logging

from ..errors import Conflict, Forbidden, GuestError, InvalidParameter, NotFound
from ..util import new_id
from . import hosts, ipam, joined, links, netdev, ports
from .firewall import PortRule
from .proxy import Proxy
from .store import PREDEFINED, icc_enabled

log = logging.getLogger("hostbridge.network")

SHARED = ("host", "none")


def _veth_name(cid, nid):
    # Derived, not random: after an engine crash the host end is found again without a state file.
    import hashlib  # not at start: it loads OpenSSL (~60 ms in an emulated guest)
    return "vh" + hashlib.sha256((cid + nid).encode()).hexdigest()[:11]


def _ip_of(members, cid):
    """The address of container ``cid`` among a network's ``[(cid, ip, names)]`` (0 or 1 of them)."""
    return [ip for other, ip, _ in members if other == cid][:1]


def _blank_endpoint(nid, cfg=None):
    cfg = cfg or {}
    ipam_cfg = cfg.get("IPAMConfig") or None
    return {"IPAMConfig": ipam_cfg, "Links": cfg.get("Links") or None, "Aliases": list(cfg.get("Aliases") or []) or None,
            "MacAddress": cfg.get("MacAddress") or "", "DriverOpts": cfg.get("DriverOpts") or None,
            "NetworkID": nid, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


_IPV6_FIELDS = {"IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0}
_RUNTIME_FIELDS = {"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
                   "DNSNames": None, **_IPV6_FIELDS}
_TOP_FIELDS = {"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
               "SandboxID": "", "SandboxKey": "", "Bridge": "", **_IPV6_FIELDS}


def _first_free(proto, host_ip, candidates, target, port):
    """A proxy on the first of the host ports ``candidates`` that can be bound (0: any).

    Raises:
        Conflict: none can (a range: dockerd's "all ports are allocated").
    """
    for host_port in candidates:
        try:
            return Proxy(proto, host_ip, host_port, target, port)
        except Conflict:
            if len(candidates) == 1:
                raise
    raise Conflict("all ports are allocated: %s ports %d-%d on %s are in use"
                   % (proto, min(candidates), max(candidates), host_ip))


class Endpoints:
    """Container hooks and connect/disconnect (mixed into NetworkManager)."""

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
        if nm == "host" and hc.get("Links"):
            raise InvalidParameter("conflicting options: host type networking can't be used with links. "
                                   "This would result in undefined behavior")
        if links.on_default_bridge(hc):
            links.check_create(c, self.containers.get)
        elif nm not in SHARED and not nm.startswith("container:"):
            # a user network: links live in its endpoint (where the CLI also puts them);
            # dockerd keeps no HostConfig.Links there
            hc["Links"] = None
        if joined.net_container_ref(hc) is not None:
            joined.check_create(c, body, self.containers.get)
        else:
            rec = self.store.get(nm)
            nets[rec["Name"]] = _blank_endpoint(rec["Id"], epc.pop(nm, None) or epc.pop(rec["Name"], None))
            if rec["Name"] not in SHARED:
                for other, ecfg in epc.items():
                    orec = self.store.get(other)
                    if orec["Name"] in SHARED:
                        raise InvalidParameter("container cannot be connected to network %s together with others"
                                               % orec["Name"])
                    nets[orec["Name"]] = _blank_endpoint(orec["Id"], ecfg)
        with self.lock:
            for name, ep in nets.items():
                self._reserve(c, self.store.get(ep["NetworkID"]), ep)
        c.data["NetworkSettings"]["Networks"] = nets

    def _reserve(self, c, rec, ep):
        wanted = ep.get("IPAMConfig") or {}
        if not (wanted.get("IPv4Address") or wanted.get("IPv6Address")):
            return
        if rec["Name"] in PREDEFINED:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if wanted.get("IPv6Address"):
            pool6 = self._pool6(rec)
            if pool6 is None:
                raise InvalidParameter(ipam.NOT_IN_SUBNETS % wanted["IPv6Address"])
            pool6.allocate(c.id, wanted["IPv6Address"])
        if wanted.get("IPv4Address"):
            self._pool(rec).allocate(c.id, wanted["IPv4Address"])

    def on_remove(self, c, volumes=False):
        """Release every address the container holds."""
        with self.lock:
            for rec in self.store.all():
                if rec["Driver"] == "bridge":
                    self._release(rec, c.id)

    def on_start(self, c, pid):
        """Plumb the container's endpoints into its namespace and publish its ports; a
        ``network connect`` event per network, as dockerd emits at every start.

        Raises:
            Conflict: a host port is in use; Unavailable: ``ip``/``iptables`` failed. Either way
            nothing of this container's networking is left behind.
        """
        self._start(c, pid, restoring=False)
        self._endpoint_events(c, "connect")

    def _endpoint_events(self, c, action):
        for ep in (c.data["NetworkSettings"].get("Networks") or {}).values():
            try:
                rec = self.store.get(ep["NetworkID"])
            except NotFound:
                continue
            self._network_event(action, c, rec)

    def _network_event(self, action, c, rec):
        self.containers.events.emit("network", action, rec["Id"], {"container": c.id, "name": rec["Name"],
                                                                   "type": rec["Driver"]})

    def _start(self, c, pid, restoring):
        nm = c.host_config.get("NetworkMode") or "bridge"
        bridged = [n for n in c.data["NetworkSettings"].get("Networks") or {} if n not in SHARED]
        if nm == "host" or nm.startswith("container:") or not bridged:  # the runtime brought lo up for "none"
            return
        with self.lock:
            try:
                links = netdev.links_in(pid) if restoring else []
                lv = {"pid": pid, "nets": {}}
                self.live[c.id] = lv
                routed = False  # the default route goes through the first network with a way out
                for i, (name, ep) in enumerate(self._ordered(c)):
                    rec = self.store.get(ep["NetworkID"])
                    self._attach(c, pid, rec, ep, "eth%d" % i, not routed and not rec.get("Internal"), links)
                    routed = routed or not rec.get("Internal")
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
        pool, pool6 = self._pool(rec), self._pool6(rec)
        ip = pool.allocate(c.id, (ep.get("IPAMConfig") or {}).get("IPv4Address"))
        ip6 = pool6.allocate(c.id, (ep.get("IPAMConfig") or {}).get("IPv6Address")) if pool6 else None
        mac = ep.get("MacAddress") or c.config.get("MacAddress") or ipam.mac_for(ip)
        veth = _veth_name(c.id, rec["Id"])
        if ifname not in existing or not netdev.link_exists(veth):
            netdev.delete_link(veth)
            netdev.plumb(pid, rec["_bridge"], veth, ifname, ip, pool.subnet.prefixlen, mac,
                         str(pool.gateway) if default_route else None, isolated=not icc_enabled(rec),
                         ipv6=ip6 and (ip6, pool6.subnet.prefixlen, str(pool6.gateway) if default_route else None))
        self.live[c.id]["nets"][rec["Id"]] = {"veth": veth, "ip": ip, "ifname": ifname, "ip6": ip6}
        user = rec["Name"] not in PREDEFINED
        aliases = [a for a in (ep.get("Aliases") or []) if a != c.id[:12]]
        # as moby's bridge driver: an --internal network gives its endpoints no gateway
        gateway = "" if rec.get("Internal") else str(pool.gateway)
        ep.update(EndpointID=ep.get("EndpointID") or new_id(), Gateway=gateway, IPAddress=ip,
                  IPPrefixLen=pool.subnet.prefixlen, MacAddress=mac, NetworkID=rec["Id"],
                  Aliases=(aliases + [c.id[:12]]) if user else (aliases or None),
                  DNSNames=([c.name] + aliases + [c.id[:12]]) if user else None)
        if ip6:
            ep.update(GlobalIPv6Address=ip6, GlobalIPv6PrefixLen=pool6.subnet.prefixlen,
                      IPv6Gateway="" if rec.get("Internal") else str(pool6.gateway))

    def _publish(self, c, restoring):
        ns = c.data["NetworkSettings"]
        exposed, bindings = ports.requested(c.config, c.host_config)
        primary = self.live[c.id]["nets"][self._ordered(c)[0][1]["NetworkID"]] if self.live[c.id]["nets"] else None
        old = ns.get("Ports") or {}
        published, proxies, rules = [], [], []
        self.proxies[c.id], self.portrules[c.id] = proxies, rules
        bridge = self.store.get(self._ordered(c)[0][1]["NetworkID"])["_bridge"] if primary else ""
        for b in bindings:
            candidates = list(range(b["host_port"], b["host_port_end"] + 1)) if b["host_port"] else [0]
            if restoring and (not b["host_port"] or len(candidates) > 1):  # the port it had
                prev = [x for x in (old.get(b["key"]) or []) if (x.get("HostIp") or "0.0.0.0") == (b["host_ip"] or "0.0.0.0")]
                candidates = [int(prev[0]["HostPort"])] if prev else candidates
            # as dockerd: no host address means both families, on the same port number
            for host_ip in ports.host_addresses(b["host_ip"]):
                v6 = ":" in host_ip
                target = primary["ip6"] if v6 and primary.get("ip6") else primary["ip"]
                p = _first_free(b["proto"], host_ip, candidates, target, b["port"])
                proxies.append(p)
                p.start()
                candidates = [p.host_port] + [x for x in candidates if x not in (0, p.host_port)]
                published.append((b["key"], host_ip, p.host_port))
                if not v6:  # IPv6 goes through the proxy only: dockerd 20.10 writes no ip6tables rules
                    rules.append(PortRule(b["proto"], host_ip, p.host_port, primary["ip"], b["port"], bridge))
        ns["Ports"] = ports.ports_view(exposed, published)

    def _fill_top(self, c, pid):
        import hashlib
        ns = c.data["NetworkSettings"]
        ns.update(SandboxID=hashlib.sha256(("%s/%d" % (c.id, pid)).encode()).hexdigest(),
                  SandboxKey="/proc/%d/ns/net" % pid)
        bridge_ep = (ns.get("Networks") or {}).get("bridge")
        if bridge_ep:  # docker fills the top-level fields for the default bridge only
            for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress", *_IPV6_FIELDS):
                ns[k] = bridge_ep[k]

    def on_stop(self, c):
        """Tear down the container's endpoints, proxies and rules (its namespace is gone); a
        ``network disconnect`` event per network."""
        with self.lock:
            self._teardown(c)
        self._endpoint_events(c, "disconnect")

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

        A ``--network none`` container joins others once disconnected from ``none``, as with
        dockerd (its own namespace gets the veths).

        Raises:
            NotFound: no such network or container; Forbidden: host and none together with
            others (dockerd's words), a container sharing another's namespace, or already connected.
        """
        body = body or {}
        c = self.containers.get(body.get("Container") or "")
        with c.lock, self.lock:
            rec = self.store.get(ref)
            nm = c.host_config.get("NetworkMode") or "bridge"
            if nm.startswith("container:"):
                raise Forbidden("container sharing network namespace with another container or host cannot be "
                                "connected to any other network")
            nets = c.data["NetworkSettings"].setdefault("Networks", {})
            if rec["Name"] in nets:
                raise Forbidden("endpoint with name %s already exists in network %s" % (c.name, rec["Name"]))
            if rec["Name"] == "host" or nm == "host":  # dockerd's checks, in its order
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            if nets and (rec["Name"] == "none" or "none" in nets):
                raise Forbidden("container cannot be connected to multiple networks with one of the networks in "
                                "private (none) mode")
            ep = _blank_endpoint(rec["Id"], body.get("EndpointConfig"))
            self._reserve(c, rec, ep)
            nets[rec["Name"]] = ep
            if c.running and c.id not in self.live:  # its first network (it left "none", or all)
                self.live[c.id] = {"pid": c.state.get("Pid"), "nets": {}}
            if c.running and c.id in self.live:
                try:
                    used = {n["ifname"] for n in self.live[c.id]["nets"].values()}
                    ifname = next("eth%d" % i for i in range(64) if "eth%d" % i not in used)
                    # a container whose networks were all --internal gets its way out now
                    routed = any(not self.store.get(n).get("Internal") for n in self.live[c.id]["nets"])
                    self._attach(c, self.live[c.id]["pid"], rec, ep, ifname, not routed and not rec.get("Internal"))
                    self._refresh_hosts()
                except BaseException:
                    del nets[rec["Name"]]
                    self._release(rec, c.id)
                    raise
            self.containers.store.save(c)
        self._network_event("connect", c, rec)

    def disconnect(self, ref, body):
        """``POST /networks/{id}/disconnect``. Raises NotFound/Forbidden as docker does."""
        body = body or {}
        c = self.containers.get(body.get("Container") or "")
        with c.lock, self.lock:
            rec = self.store.get(ref)
            nets = c.data["NetworkSettings"].get("Networks") or {}
            if rec["Name"] not in nets:
                raise Forbidden("container %s is not connected to network %s" % (c.name, rec["Name"]))
            if rec["Name"] == "host" and c.running:  # dockerd lets it leave "none", and "host" before a start
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            lv = self.live.get(c.id)
            if lv and rec["Id"] in lv["nets"]:
                netdev.delete_link(lv["nets"].pop(rec["Id"])["veth"])
            del nets[rec["Name"]]
            if rec["Name"] == "bridge":
                c.data["NetworkSettings"].update({k: v for k, v in _TOP_FIELDS.items() if k not in ("SandboxID", "SandboxKey")})
            self._release(rec, c.id)
            self._refresh_hosts()
            self.containers.store.save(c)
        self._network_event("disconnect", c, rec)

    def remove_link(self, ref, alias):
        """``DELETE /containers/C/ALIAS?link=1``: drop a legacy link; C's /etc/hosts follows.

        Raises:
            NotFound: no container C, or no link ALIAS on it.
        """
        c = self.containers.get(ref)
        with c.lock:
            links.remove(c, alias)
            self.containers.store.save(c)
        with self.lock:
            self._refresh_hosts()

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
                    # as docker: no name resolution between containers on the default bridge, but
                    # for the legacy links: "IP ALIAS TARGET"
                    peers += [(ip, [alias] + ([t.name] if t.name != alias else []))
                              for alias, t in links.legacy(c, self.containers.get)
                              for ip in _ip_of(members.get(nid, []), t.id)]
                    continue
                peers += [(ip, names) for other, ip, names in members.get(nid, []) if other != cid]
                # links on a user network: an alias that only this container resolves
                ep = next((e for e in (c.data["NetworkSettings"].get("Networks") or {}).values()
                           if e.get("NetworkID") == nid), {})
                for spec in ep.get("Links") or []:
                    target, alias = links.parse(spec)
                    try:
                        tid = self.containers.get(target).id
                    except NotFound:
                        continue
                    peers += [(ip, [alias]) for ip in _ip_of(members.get(nid, []), tid)]
            hosts.write(c.dir, own, peers)
