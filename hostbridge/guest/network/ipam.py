"""Address management: choosing subnets that do not clash, and handing out addresses in them.

Allocations live in ``ROOT/network/ipam/<network-id>.json`` (``{"subnet", "gateway",
"allocated": {ip: owner}}``), written atomically on every change, so that an engine restart
gives every container back the address it had.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import threading

from ..errors import Conflict, InvalidParameter, Unavailable
from ..util import makedirs, read_json, write_json

# Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/16 cut in /20s.
CANDIDATES = (["172.%d.0.0/16" % i for i in range(17, 32)]
              + ["192.168.%d.0/20" % (16 * i) for i in range(16)])


_RTM_GETROUTE, _NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 26, 0x1, 0x300, 2, 3
_RTA_DST, _RTA_OIF = 1, 4
_RTN_SKIPPED = (2, 3, 5)  # local, broadcast, multicast: not a route to somewhere else


def route_dump(family=4):
    """Every route of every table of this network namespace, as ``ip route show table all``
    lists them, read over rtnetlink (no process: forks cost ~0.3 s each in an emulated guest).

    Returns:
        A list of ``(route type, IPv4Network or IPv6Network or None for a default route, ifindex or 0)``.
    Raises:
        OSError: netlink is not available.
    """
    import socket
    import struct
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    routes = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:
        s.bind((0, 0))
        s.send(struct.pack("=LHHLL", 28, _RTM_GETROUTE, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
               + struct.pack("=BBBBBBBBI", af, 0, 0, 0, 0, 0, 0, 0, 0))
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=LH", data, off)
                if kind == _NLMSG_DONE:
                    return routes
                if kind == _NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, off + 16)[0], "netlink route dump refused")
                rfamily, dst_len, _, _, _, _, _, rtype = struct.unpack_from("=BBBBBBBB", data, off + 16)
                dst, oif, a = None, 0, off + 28
                while a + 4 <= off + length:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if atype == _RTA_DST:
                        dst = ipaddress.ip_network((bytes(data[a + 4:a + alen]), dst_len), strict=False)
                    elif atype == _RTA_OIF:
                        oif = struct.unpack_from("=I", data, a + 4)[0]
                    a += (alen + 3) & ~3
                if rfamily == af:
                    routes.append((rtype, dst, oif))
                off += (length + 3) & ~3
            if not data:
                return routes


def host_routes(family=4):
    """The destinations of the host's routes, default route excluded.

    Args:
        family: 4 or 6.
    Returns:
        A list of ``(IPv4Network, device)`` (IPv6Network for family 6).
    """
    import socket
    try:
        routes = route_dump(family)
    except OSError:
        return []
    nets = []
    for rtype, net, oif in routes:
        if net is None or not net.prefixlen or rtype in _RTN_SKIPPED or net.is_loopback or net.is_link_local:
            continue
        try:
            dev = socket.if_indextoname(oif) if oif else ""
        except OSError:
            dev = ""
        nets.append((net, dev))
    return nets


@contextlib.contextmanager
def host_lock():
    """Serialise subnet choice between engines on this host until the chosen bridge is up.

    Two engines starting at once would otherwise both read the routes, both pick the same free
    subnet, and both create a bridge for it.
    """
    if os.path.isdir("/run/lock"):
        d = "/run/lock"
    else:  # tempfile only then: its import is a fair part of a start in an emulated guest
        import tempfile
        d = tempfile.gettempdir()
    fd = os.open(os.path.join(d, "hostbridge-ipam.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_MAX_PREFIX = {4: 30, 6: 126}
NOT_IN_SUBNETS = "Invalid address %s: It does not belong to any of this network's subnets"  # dockerd's words


def parse_subnet(text, field="Subnet", versions=(4,)):
    """``"10.1.0.0/24"`` → IPv4Network (``"fd00::/64"`` → IPv6Network when 6 is in ``versions``).

    Raises:
        InvalidParameter: naming the field.
    """
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        raise InvalidParameter("invalid %s: %r is not an IPv4 CIDR (e.g. 10.10.0.0/24)" % (field, text)) from None
    if net.version not in versions:
        raise InvalidParameter("invalid %s %s: only IPv%d subnets are allowed here" % (field, text, versions[0]))
    if net.prefixlen > _MAX_PREFIX[net.version]:
        raise InvalidParameter("invalid %s %s: the prefix must be /%d or shorter" % (field, text, _MAX_PREFIX[net.version]))
    return net


def version_of(cidr):
    """4 or 6 for a CIDR or address string (4 for what does not parse: parse_subnet says why)."""
    try:
        return ipaddress.ip_network(str(cidr), strict=False).version
    except ValueError:
        return 4


def split_configs(configs):
    """An IPAM config list → ``(ipv4_config, ipv6_config)``, either ``{}`` when absent.

    docker lists the IPv4 config first; a config without a subnet counts as IPv4.
    """
    v4 = [c for c in configs if version_of(c.get("Subnet") or "0.0.0.0/0") == 4]
    v6 = [c for c in configs if c not in v4]
    return (v4 or [{}])[0], (v6 or [{}])[0]


def find_clash(net, taken):
    """The first ``(network, label)`` in ``taken`` that overlaps ``net``, or None."""
    for other, label in taken:
        if net.version == other.version and net.overlaps(other):
            return other, label
    return None


def pick_subnet(taken, candidates=CANDIDATES):
    """The first candidate that overlaps nothing in ``taken`` (``[(network, label)]``).

    Raises:
        Unavailable: every candidate is in use.
    """
    for c in candidates:
        net = ipaddress.ip_network(c)
        if find_clash(net, taken) is None:
            return net
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults "
                      "to assign to the network; remove unused networks or give --subnet")


class Pool:
    """The addresses of one network. Thread-safe; every change is persisted before returning."""

    def __init__(self, path, subnet, gateway=None, ip_range=None, aux=()):
        self.path = path
        self._lock = threading.Lock()
        saved = read_json(path, None)
        if saved:
            self.subnet = ipaddress.ip_network(saved["subnet"])
            self.gateway = ipaddress.ip_address(saved["gateway"])
            self.range = ipaddress.ip_network(saved.get("range") or saved["subnet"])
            self.aux = {ipaddress.ip_address(a) for a in saved.get("aux") or ()}
            self.allocated = dict(saved.get("allocated") or {})
            return
        self.subnet = subnet
        if gateway:
            try:
                self.gateway = ipaddress.ip_address(gateway)
            except ValueError:
                raise InvalidParameter("invalid Gateway %r: not an IPv%d address" % (gateway, subnet.version)) from None
            if self.gateway not in subnet:
                raise InvalidParameter("invalid Gateway %s: it is not in subnet %s" % (gateway, subnet))
        else:
            self.gateway = next(subnet.hosts())
        self.range = parse_subnet(ip_range, "IPRange", (subnet.version,)) if ip_range else subnet
        if not self.range.subnet_of(subnet):
            raise InvalidParameter("invalid IPRange %s: it is not inside subnet %s" % (ip_range, subnet))
        self.aux = set()
        for a in aux or ():
            try:
                ip = ipaddress.ip_address(a)
            except ValueError:
                raise InvalidParameter("invalid auxiliary address %r: not an IP address" % a) from None
            if ip not in subnet:
                raise InvalidParameter("no matching subnet for aux-address %s" % a)  # the docker CLI's words
            self.aux.add(ip)
        self.allocated = {}
        self._save()

    def _save(self):
        makedirs(os.path.dirname(self.path))
        write_json(self.path, {"subnet": str(self.subnet), "gateway": str(self.gateway), "range": str(self.range),
                               "aux": sorted(str(a) for a in self.aux), "allocated": self.allocated})

    def _reserved(self, ip):
        return ip in (self.subnet.network_address, self.subnet.broadcast_address, self.gateway)

    def allocate(self, owner, wanted=None):
        """An address for ``owner`` (its own again when it already has one).

        Args:
            owner: who holds the address (a container id).
            wanted: a specific address (``--ip``), or None for the next free one.
        Returns:
            The address as a string.
        Raises:
            InvalidParameter: ``wanted`` is not a usable address of this subnet.
            Conflict: ``wanted`` is taken, or the subnet is full.
        """
        with self._lock:
            mine = [ip for ip, o in self.allocated.items() if o == owner]
            if wanted:
                try:
                    ip = ipaddress.ip_address(wanted)
                except ValueError:
                    raise InvalidParameter("invalid IPv%d address: %s" % (self.subnet.version, wanted)) from None
                if ip not in self.subnet:
                    raise InvalidParameter(NOT_IN_SUBNETS % wanted)
                if self._reserved(ip):
                    raise InvalidParameter("invalid address %s: it is not a usable address of subnet %s"
                                           % (wanted, self.subnet))
                holder = self.allocated.get(str(ip))
                if holder and holder != owner:
                    raise Conflict("Address already in use: %s is taken by container %s" % (ip, holder[:12]))
                if ip in self.aux:
                    raise Conflict("Address already in use: %s is an auxiliary address of the network" % ip)
                for old in mine:
                    if old != str(ip):
                        del self.allocated[old]
                self.allocated[str(ip)] = owner
                self._save()
                return str(ip)
            if mine:
                return mine[0]
            for ip in self.range.hosts():
                if not self._reserved(ip) and ip not in self.aux and str(ip) not in self.allocated:
                    self.allocated[str(ip)] = owner
                    self._save()
                    return str(ip)
        raise Conflict("no available IPv%d addresses on subnet %s: remove containers from the network"
                       % (self.subnet.version, self.subnet))

    def release(self, owner):
        """Free every address ``owner`` holds (no error when it holds none)."""
        with self._lock:
            gone = [ip for ip, o in self.allocated.items() if o == owner]
            for ip in gone:
                del self.allocated[ip]
            if gone:
                self._save()

    def owners(self):
        with self._lock:
            return set(self.allocated.values())

    def destroy(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def mac_for(ip):
    """Docker's MAC for an IPv4 address: 02:42 then the four address bytes."""
    return "02:42:" + ":".join("%02x" % b for b in ipaddress.ip_address(ip).packed)
