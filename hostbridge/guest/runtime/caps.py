"""Linux capabilities: docker's default set, cap_add/cap_drop, and applying a set to a process.

What docker (runc) does, and so do we: the bounding set is the container's set; a root process
also has it as effective and permitted; inheritable is empty for everyone; a non-root user gets
no effective or permitted capabilities at all (CVE-2022-24769's fix).
"""

from __future__ import annotations

from ..errors import InvalidParameter
from . import ns

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
NUMBERS = {name: i for i, name in enumerate(NAMES)}

DEFAULT = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def normalize(name: str) -> str:
    """``"net_admin"`` / ``"CAP_NET_ADMIN"`` → ``"NET_ADMIN"``; ``ALL`` stays ``ALL``.

    Raises:
        InvalidParameter: an unknown capability name.
    """
    n = name.strip().upper()
    if n.startswith("CAP_"):
        n = n[4:]
    if n != "ALL" and n not in NUMBERS:
        raise InvalidParameter("unknown capability: %r" % name)
    return n


def effective_names(cap_add=(), cap_drop=(), privileged: bool = False) -> list:
    """The container's capability names after docker's rules.

    Drops apply to the default set first, then adds (docker lets an add win over a drop of
    ALL: ``--cap-drop ALL --cap-add NET_ADMIN`` keeps NET_ADMIN).
    """
    known = NAMES[: last_cap() + 1]
    if privileged:
        return list(known)
    adds = [normalize(c) for c in cap_add or ()]
    drops = [normalize(c) for c in cap_drop or ()]
    if "ALL" in adds:
        return list(known)
    caps = [] if "ALL" in drops else [c for c in DEFAULT if c not in drops]
    for c in adds:
        if c not in caps and c in known:
            caps.append(c)
    return caps


def mask(names) -> int:
    """The bit mask of capability names."""
    m = 0
    for n in names:
        m |= 1 << NUMBERS[n]
    return m


def names_of(bits: int) -> list:
    """Capability names set in mask ``bits`` (as /proc/PID/status CapEff prints it, parsed)."""
    return [NAMES[i] for i in range(len(NAMES)) if bits >> i & 1]


def own_bounding() -> int:
    """This process's bounding set: no container can hold more (privileged means "all of these")."""
    m = 0
    for i in range(last_cap() + 1):
        if ns.prctl(ns.PR_CAPBSET_READ, i) == 1:
            m |= 1 << i
    return m


def drop_bounding(keep: int) -> None:
    """Drop every capability not in mask ``keep`` from this process's bounding set.

    Needs CAP_SETPCAP, so call it before changing to a non-root user.
    """
    for i in range(last_cap() + 1):
        if not keep >> i & 1:
            ns.prctl(ns.PR_CAPBSET_DROP, i)


def apply_after_setuid(keep: int, uid: int) -> None:
    """Set effective/permitted/inheritable once the final uid is in place.

    Root keeps ``keep`` effective and permitted; a non-root user ends with nothing (setuid
    already cleared its sets unless keep-caps was on; this makes it explicit).
    """
    try:
        ns.prctl(ns.PR_CAP_AMBIENT, ns.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set
    if uid == 0:
        ns.capset(keep, keep, 0)
    else:
        ns.capset(0, 0, 0)
