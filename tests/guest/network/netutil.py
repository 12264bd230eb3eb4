"""Helpers for the network tests: the docker CLI, a UDP echo inside a namespace, host state."""

import json
import subprocess
import sys
import time


def dk(env, *args, check=True, timeout=60):
    """Run the stock docker CLI against the test engine; returns the CompletedProcess."""
    r = subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("docker %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def inspect(env, ref):
    return json.loads(dk(env, "inspect", ref).stdout)[0]


def udp_echo(pid, port, count=20):
    """A UDP echo server (``count`` datagrams, 60 s at most) in ``pid``'s network namespace.

    Debian's busybox has no UDP server applet, so the host's python serves inside the namespace.
    """
    code = ("import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',%d));"
            "s.settimeout(60)\nfor _ in range(%d):\n d,a=s.recvfrom(65535);s.sendto(d,a)" % (port, count))
    q = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code])
    wait_bound(pid, port, "udp")
    return q


def wait_bound(pid, port, proto="tcp", timeout=10.0):
    """Wait until something in ``pid``'s network namespace listens on (or binds) ``port``."""
    want = ":%04X " % port
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for table in (proto, proto + "6"):  # busybox listens on an IPv6 socket (v4-mapped)
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if want in fields[1] + " " and (proto == "udp" or fields[3] == "0A"):
                        return
        time.sleep(0.05)
    raise AssertionError("nothing bound %s port %d in the namespace of %d within %ss" % (proto, port, pid, timeout))


def links():
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def ruleset():
    """Every iptables rule of the host (both tables we use), as text."""
    return "".join(subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True).stdout
                   for t in ("filter", "nat"))
