"""Links and addresses: bridges on the host, veth pairs into container network namespaces.

Everything goes through ``ip -batch`` so that plumbing a container costs two processes: one on
the host side, one inside the container's namespace (``nsenter -n``).
"""

from __future__ import annotations

import json
import os
import subprocess

from ..errors import Unavailable


def _run(argv, stdin=None):
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise Unavailable("network setup failed: %s: %s" % (argv[0], e)) from None
    if r.returncode != 0:
        raise Unavailable("network setup failed: %s: %s" % (" ".join(argv[:3]), r.stderr.decode(errors="replace").strip()))
    return r.stdout


def _batch(cmds, pid=None):
    argv = ["ip", "-batch", "-"]
    if pid:
        argv = ["nsenter", "-t", str(pid), "-n"] + argv
    _run(argv, ("\n".join(cmds) + "\n").encode())


def link_exists(name):
    return os.path.exists("/sys/class/net/%s" % name)


def ensure_bridge(name, gateway, prefixlen, mtu=1500, gateway6=None):
    """Create bridge ``name`` with ``gateway/prefixlen`` and bring it up (idempotent).

    Args:
        gateway6: ``ADDRESS/PREFIX`` of an IPv6 network's gateway, or None.
    """
    cmds = []
    if not link_exists(name):
        cmds.append("link add name %s type bridge" % name)
    cmds += ["addr replace %s/%d dev %s" % (gateway, prefixlen, name),
             "link set %s mtu %d up" % (name, mtu)]
    if gateway6:
        _batch(cmds[:1])
        _enable_ipv6(name)
        # nodad: the address is usable at once (no duplicate can exist on a bridge we just made)
        cmds = cmds[1:] + ["addr replace %s dev %s nodad" % (gateway6, name)]
    _batch(cmds)


def _enable_ipv6(dev):
    """Let ``dev`` carry IPv6 (a host booted with IPv6 off by default would refuse the address)."""
    path = "/proc/sys/net/ipv6/conf/%s/disable_ipv6" % dev
    try:
        with open(path) as f:
            if f.read().strip() == "0":
                return
        with open(path, "w") as f:
            f.write("0")
    except OSError as e:
        raise Unavailable("cannot enable IPv6 on %s (%s): %s" % (dev, path, e)) from None


def delete_link(name):
    """Delete a link (bridge or veth); no error when it is already gone."""
    if link_exists(name):
        r = subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
        if r.returncode != 0 and link_exists(name):
            raise Unavailable("could not delete network device %s: %s" % (name, r.stderr.decode().strip()))


def new_veth_name():
    """A free host-side veth name (docker's ``veth`` + 7 hex digits)."""
    while True:
        name = "veth" + os.urandom(4).hex()[:7]
        if not link_exists(name):
            return name


def plumb(pid, bridge, host_veth, ifname, ip, prefixlen, mac, gateway=None, mtu=1500, isolated=False, ipv6=None):
    """Give the process ``pid``'s network namespace an interface on ``bridge``.

    Args:
        pid: a process in the target namespace (the container's init).
        bridge: the host bridge the host end joins.
        host_veth: the name of the host end.
        ifname: the name inside (``eth0``, ``eth1``…).
        ip, prefixlen, mac: the interface's address.
        gateway: when given, the namespace's default route goes through it.
        isolated: make the host end an isolated bridge port (``enable_icc=false``): isolated
            ports exchange no frames with each other, only with the bridge (the host) itself.
        ipv6: ``(address, prefixlen, gateway or None)`` on an IPv6 network, else None.
    Raises:
        Unavailable: ``ip`` failed (the host end is removed again).
    """
    tmp = "hbt" + os.urandom(5).hex()  # the peer gets its final name inside the namespace
    host = ["link add %s mtu %d type veth peer name %s mtu %d netns %d" % (host_veth, mtu, tmp, mtu, pid),
            "link set %s master %s up" % (host_veth, bridge)]
    if isolated:
        host.append("link set dev %s type bridge_slave isolated on" % host_veth)
    try:
        _batch(host)
    except Unavailable:
        delete_link(host_veth)
        raise
    inside = ["link set lo up",
              "link set %s name %s" % (tmp, ifname),
              "link set %s address %s" % (ifname, mac),
              "addr add %s/%d dev %s" % (ip, prefixlen, ifname),
              "link set %s up" % ifname]
    if gateway:
        inside.append("route replace default via %s dev %s" % (gateway, ifname))
    if ipv6:
        ip6, prefix6, gateway6 = ipv6
        inside.append("addr add %s/%d dev %s nodad" % (ip6, prefix6, ifname))
        if gateway6:
            inside.append("route replace default via %s dev %s" % (gateway6, ifname))
    try:
        _batch(inside, pid)
    except Unavailable:
        delete_link(host_veth)
        raise


def links_in(pid):
    """Interface names inside ``pid``'s network namespace."""
    out = _run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "link", "show"])
    return [link["ifname"] for link in json.loads(out or b"[]")]


def set_forwarding():
    """net.ipv4.ip_forward=1 (containers' egress goes through the host)."""
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
    except OSError as e:
        raise Unavailable("cannot enable IPv4 forwarding (net.ipv4.ip_forward): %s" % e) from None
