"""NAT and forwarding rules, kept in the engine's own chains so that cleanup is exact.

The whole rule set is rendered from the engine's state and applied at once on every change
(``iptables-restore --noflush`` replaces only our chains; with nft, our own table is replaced).
The built-in chains get one jump each into ours; ``clear()`` removes the jumps and the chains.

Chains (iptables; ``P`` is the chain prefix, ``HOSTBRIDGE`` for the default engine root):
  filter  P-FORWARD   ← FORWARD      isolation first, then accept traffic from and to our bridges
  filter  P-ISOLATION-1 ← P-FORWARD  per bridge: leaving it for another interface → stage 2;
                                     an --internal bridge: nothing in or out (DROP)
  filter  P-ISOLATION-2 ← stage 1    entering any of our bridges (so: another of ours) → DROP
  nat     P           ← PREROUTING, OUTPUT (to local addresses, not 127/8)   DNAT published ports
                                     (not from our bridges: those reach published ports through
                                     the userland proxy, as with dockerd, so isolation holds)
  nat     P-POSTROUTING ← POSTROUTING  MASQUERADE each subnet leaving its bridge (not --internal)

The two isolation stages are dockerd's DOCKER-ISOLATION-STAGE-1/2 in our own chains: a container
on one network cannot reach a container on another through the host's routing, while traffic
within a bridge is bridged (never forwarded) and a container on two networks reaches both
directly. ``enable_icc=false`` is not a rule here: its veths are isolated bridge ports
(netdev.plumb), which needs no br_netfilter.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess

from ..errors import Unavailable


# Named tuples, not dataclasses: dataclasses imports inspect (a fair part of a start in an emulated guest).
# internal: no way in or out of the bridge, no NAT (docker's --internal).
NetRule = collections.namedtuple("NetRule", "bridge subnet internal", defaults=(False,))
# host_ip: "0.0.0.0" for any.
PortRule = collections.namedtuple("PortRule", "proto host_ip host_port ip port bridge")


def detect():
    """``"iptables"`` or ``"nft"``: iptables when its restore tool exists, else nft."""
    if shutil.which("iptables-restore") and shutil.which("iptables-save") and shutil.which("iptables"):
        return "iptables"
    if shutil.which("nft"):
        return "nft"
    raise Unavailable("neither iptables nor nft is installed: install iptables (or nftables) for container networking")


def _boot_id():
    """This boot's id (rules live until the next boot), or "" when the kernel does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _run(argv, stdin=None, check=True):
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise Unavailable("firewall update failed: %s: %s" % (argv[0], e)) from None
    if check and r.returncode != 0:
        raise Unavailable("firewall update failed: %s: %s" % (" ".join(argv[:2]), r.stderr.decode(errors="replace").strip()))
    return r


def _dnat_match(p, bridge_not=True):
    m = "-p %s" % p.proto
    if p.host_ip not in ("", "0.0.0.0"):
        m += " -d %s/32" % p.host_ip
    if bridge_not:
        m = "! -i %s " % p.bridge + m
    return m + " -m %s --dport %d" % (p.proto, p.host_port)


def _chains(prefix):
    """Our chains as (table, name), in the order they can be deleted (referrers first)."""
    return [("filter", prefix + "-FORWARD"), ("filter", prefix + "-ISOLATION-1"),
            ("filter", prefix + "-ISOLATION-2"), ("nat", prefix), ("nat", prefix + "-POSTROUTING")]


def render_iptables(prefix, nets, ports):
    """The iptables-restore text for our chains (pure: tested without iptables)."""
    fwd, iso1, iso2, nat, post = (name for _, name in _chains(prefix))
    f = ["*filter", ":%s - [0:0]" % fwd, ":%s - [0:0]" % iso1, ":%s - [0:0]" % iso2,
         "-A %s -j %s" % (fwd, iso1)]
    for n in nets:
        if n.internal:
            f.append("-A %s -i %s ! -o %s -j DROP" % (iso1, n.bridge, n.bridge))
            f.append("-A %s -o %s ! -i %s -j DROP" % (iso1, n.bridge, n.bridge))
        else:
            f.append("-A %s -i %s ! -o %s -j %s" % (iso1, n.bridge, n.bridge, iso2))
        f.append("-A %s -o %s -j DROP" % (iso2, n.bridge))
    for n in nets:
        f.append("-A %s -o %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" % (fwd, n.bridge))
        f.append("-A %s -i %s -j ACCEPT" % (fwd, n.bridge))
        f.append("-A %s -o %s -j ACCEPT" % (fwd, n.bridge))
    f.append("COMMIT")
    t = ["*nat", ":%s - [0:0]" % nat, ":%s - [0:0]" % post]
    if ports:
        t += ["-A %s -i %s -j RETURN" % (nat, n.bridge) for n in nets]
    for p in ports:
        t.append("-A %s %s -j DNAT --to-destination %s:%d" % (nat, _dnat_match(p), p.ip, p.port))
    for n in nets:
        if not n.internal:
            t.append("-A %s -s %s ! -o %s -j MASQUERADE" % (post, n.subnet, n.bridge))
    t.append("COMMIT")
    return "\n".join(f + t) + "\n"


def _jumps(prefix):
    return [("filter", "FORWARD", ["-j", prefix + "-FORWARD"]),
            ("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", prefix]),
            ("nat", "OUTPUT", ["!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", prefix]),
            ("nat", "POSTROUTING", ["-j", prefix + "-POSTROUTING"])]


def parse_save(text, prefix):
    """What ``iptables-save`` says of ours (pure): ``(chains, jumps)``, the set of our chains
    that exist as (table, name), and the rules of built-in chains that jump to one of them, as
    (table, rule text after ``-A``)."""
    ours = {name for _, name in _chains(prefix)}
    chains, jumps, table = set(), [], None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and line[1:].split(" ", 1)[0] in ours:
            chains.add((table, line[1:].split(" ", 1)[0]))
        elif line.startswith("-A "):
            words = line.split()
            if len(words) > 3 and words[-2] == "-j" and words[-1] in ours and words[1] not in ours:
                jumps.append((table, line[3:]))
    return chains, jumps


def with_jumps(text, prefix, present):
    """``render_iptables``'s ``text`` with an insert of each of our jumps not in ``present`` (the
    (table, built-in chain, target) triples found by ``parse_save``), before its table's COMMIT."""
    out, table = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        if line == "COMMIT":
            out += ["-I %s 1 %s" % (chain, " ".join(rule)) for t, chain, rule in _jumps(prefix)
                    if t == table and (t, chain, rule[-1]) not in present]
        out.append(line)
    return "\n".join(out) + "\n"


def render_clear(prefix, chains, jumps):
    """The ``iptables-restore --noflush`` text that deletes ``jumps`` and ``chains`` (as found by
    ``parse_save``), or "" when there is nothing of ours (pure)."""
    out = []
    for table in ("filter", "nat"):
        lines = ["-D " + rule for t, rule in jumps if t == table]
        names = [name for t, name in _chains(prefix) if (t, name) in chains and t == table]
        lines += ["-F " + name for name in names] + ["-X " + name for name in names]  # flushed before any goes
        if lines:
            out += ["*" + table] + lines + ["COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def render_nft(table, nets, ports):
    """The ``nft -f`` text that (re)creates our table (pure)."""
    lines = ["table ip %s {" % table,
             " chain forward { type filter hook forward priority -1; policy accept;"]
    bridges = [n.bridge for n in nets]
    for n in nets:  # isolation first, as in render_iptables
        if n.internal:
            lines += ['  iifname "%s" oifname != "%s" drop' % (n.bridge, n.bridge),
                      '  oifname "%s" iifname != "%s" drop' % (n.bridge, n.bridge)]
        others = [b for b in bridges if b != n.bridge]
        if others and not n.internal:
            lines.append('  iifname "%s" oifname { %s } drop' % (n.bridge, ", ".join('"%s"' % b for b in others)))
    for n in nets:
        lines += ['  oifname "%s" ct state related,established accept' % n.bridge,
                  '  iifname "%s" accept' % n.bridge, '  oifname "%s" accept' % n.bridge]
    lines += [" }", " chain prerouting { type nat hook prerouting priority -101; policy accept;",
              "  fib daddr type local jump publish", " }",
              " chain output { type nat hook output priority -101; policy accept;",
              "  ip daddr != 127.0.0.0/8 fib daddr type local jump publish", " }", " chain publish {"]
    if ports:
        lines += ['  iifname "%s" return' % b for b in bridges]
    for p in ports:
        dst = "" if p.host_ip in ("", "0.0.0.0") else " ip daddr %s" % p.host_ip
        lines.append('  iifname != "%s"%s %s dport %d dnat to %s:%d' % (p.bridge, dst, p.proto, p.host_port, p.ip, p.port))
    lines += [" }", " chain postrouting { type nat hook postrouting priority 99; policy accept;"]
    for n in nets:
        if not n.internal:
            lines.append('  ip saddr %s oifname != "%s" masquerade' % (n.subnet, n.bridge))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


class Firewall:
    """Applies the engine's rule set; ``prefix`` names our chains (or our nft table)."""

    def __init__(self, prefix="HOSTBRIDGE", backend=None, record=None):
        self.prefix = prefix
        self.backend = backend or detect()
        # A file holding the boot id of the boot in which our jumps were inserted and not yet
        # removed: without it (a new boot, or a clean stop before) the first apply need not
        # read the rules to know which jumps are there. None: always read them.
        self.record = record
        self._jumps_in_place = False
        self._applied = None  # the last rule set applied: a start without ports changes nothing

    @property
    def table(self):
        return self.prefix.lower().replace("-", "_")

    def apply(self, nets, ports):
        """Replace our rules with exactly those for ``nets`` and ``ports``.

        Raises:
            Unavailable: the firewall tool refused the rules.
        """
        key = (tuple(nets), tuple(ports))
        if key == self._applied:
            return
        if self.backend == "nft":
            text = "table ip %s {}\ndelete table ip %s\n" % (self.table, self.table) + render_nft(self.table, nets, ports)
            _run(["nft", "-f", "-"], text.encode())
            self._applied = key
            return
        text = render_iptables(self.prefix, nets, ports)
        if not self._jumps_in_place:  # checked once per engine: a container start costs one process
            present = set()
            if self._jumps_maybe_there():
                _, jumps = self._saved()
                present = {(t, rule.split()[0], rule.split()[-1]) for t, rule in jumps}
            text = with_jumps(text, self.prefix, present)
            self._note_jumps(True)  # before they exist: a crash in between costs the next start a read, no double
        _run(["iptables-restore", "-w", "--noflush"], text.encode())
        self._applied = key
        self._jumps_in_place = True

    def _jumps_maybe_there(self):
        if self.record is None:
            return True
        try:
            with open(self.record) as f:
                return f.read() == _boot_id()
        except OSError as e:
            return not isinstance(e, FileNotFoundError)

    def _note_jumps(self, there):
        if self.record is None:
            return
        if there:
            with open(self.record, "w") as f:
                f.write(_boot_id())
        else:
            try:
                os.unlink(self.record)
            except FileNotFoundError:
                pass

    def _saved(self):
        """``parse_save`` of the rules now in place (one process, not one per rule)."""
        return parse_save(_run(["iptables-save"]).stdout.decode(errors="replace"), self.prefix)

    def clear(self):
        """Remove every rule and chain of ours (no error for what is already gone)."""
        self._jumps_in_place = False
        self._applied = None
        if self.backend == "nft":
            _run(["nft", "delete", "table", "ip", self.table], check=False)
            return
        try:  # jumps inserted twice by a crashed engine go too: each one saved is deleted
            text = render_clear(self.prefix, *self._saved())
        except Unavailable:
            return
        if not text or _run(["iptables-restore", "-w", "--noflush"], text.encode(), check=False).returncode == 0:
            self._note_jumps(False)

    def chains(self):
        """Our chains (or table) that exist now: for tests and diagnostics."""
        if self.backend == "nft":
            r = _run(["nft", "list", "tables"], check=False)
            return [line for line in r.stdout.decode().splitlines() if line.split()[-1:] == [self.table]]
        found = []
        for table in ("filter", "nat"):
            r = _run(["iptables", "-w", "-t", table, "-S"], check=False)
            found += [line for line in r.stdout.decode().splitlines() if self.prefix in line]
        return found
