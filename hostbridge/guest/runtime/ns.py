"""Thin ctypes wrappers over the Linux calls the runtime needs and Python 3.9–3.11 lack.

Every wrapper raises ``OSError`` carrying errno and the call's name, so callers can test
``e.errno`` just as with ``os`` functions.
"""

from __future__ import annotations

import ctypes
import os


def _load_libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)  # glibc: no need to run ldconfig
    except OSError:
        from ctypes.util import (
            find_library,  # musl and others: slower (may run ldconfig)
        )

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_pylibc = ctypes.PyDLL(_libc._name, use_errno=True)
_MACHINE = os.uname().machine

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203,
                   "s390x": 217, "riscv64": 41, "i686": 217, "i386": 217}
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90, "armv7l": 184, "ppc64le": 183,
               "s390x": 184, "riscv64": 90, "i686": 184, "i386": 184}
_SYS_CAPSET = {k: v + 1 for k, v in _SYS_CAPGET.items()}
_SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134, "armv7l": 174, "ppc64le": 173,
                     "s390x": 174, "riscv64": 134, "i686": 174, "i386": 174}

_SYS_CLOSE_RANGE = 436  # x86_64 and the generic table (aarch64) alike
CLOSE_RANGE_CLOEXEC = 4

_CAP_V3 = 0x20080522

NS_FLAGS = {"mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "net": CLONE_NEWNET,
            "pid": CLONE_NEWPID, "user": CLONE_NEWUSER, "cgroup": CLONE_NEWCGROUP}


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def _b(s):
    if s is None:
        return None
    return s.encode() if isinstance(s, str) else s


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces of the kinds in ``flags``."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace open at ``fd`` (0 = any kind)."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    """mount(2). Raises OSError naming the target."""
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, "mount %s on %s" % (fstype or source, target))


def umount2(target, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), "umount %s" % target)


def pivot_root(new_root, put_old) -> None:
    """pivot_root(2), through syscall(2): glibc has no wrapper."""
    nr = _SYS_PIVOT_ROOT[_MACHINE]
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def default_all_signals() -> None:
    """Every signal's disposition to SIG_DFL, glibc's reserved real-time ones too (ignored
    dispositions survive execve: a container must not inherit what its starter ignored)."""
    zero = ctypes.create_string_buffer(64)  # a kernel sigaction of zeros: SIG_DFL, no flags, no mask
    nr = _SYS_RT_SIGACTION.get(_MACHINE)
    for sig in range(1, 65):
        if sig in (9, 19) or nr is None:
            continue
        _libc.syscall(ctypes.c_long(nr), ctypes.c_int(sig), zero, None, ctypes.c_size_t(8))


def close_range(first: int, last: int, flags: int = 0) -> None:
    """close_range(2) (Linux 5.9+; CLOSE_RANGE_CLOEXEC 5.11+). Raises OSError (ENOSYS, EINVAL)."""
    _check(_libc.syscall(ctypes.c_long(_SYS_CLOSE_RANGE), ctypes.c_uint(first), ctypes.c_uint(last),
                         ctypes.c_uint(flags)), "close_range")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    b = name.encode()
    _check(_libc.sethostname(b, ctypes.c_size_t(len(b))), "sethostname")


def setdomainname(name: str) -> None:
    """setdomainname(2) in the current UTS namespace."""
    b = name.encode()
    _check(_libc.setdomainname(b, ctypes.c_size_t(len(b))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments; returns its result."""
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(ctypes.c_int(option), *args), "prctl %d" % option)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple:
    """capget(2): ``(effective, permitted, inheritable)`` as 64-bit masks."""
    hdr = _CapHeader(_CAP_V3, pid)
    data = (_CapData * 2)()
    nr = _SYS_CAPGET[_MACHINE]
    _check(_libc.syscall(ctypes.c_long(nr), ctypes.byref(hdr), ctypes.byref(data)), "capget")
    return tuple(getattr(data[0], f) | (getattr(data[1], f) << 32)
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) on this thread, each set a 64-bit mask."""
    hdr = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    nr = _SYS_CAPSET[_MACHINE]
    _check(_libc.syscall(ctypes.c_long(nr), ctypes.byref(hdr), ctypes.byref(data)), "capset")


CLONE_INTO_CGROUP = 0x200000000
_SYS_CLONE3 = 435  # x86_64 and the generic table (aarch64) alike


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup")]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """``os.fork()`` whose child is born in the cgroup2 directory ``cgroup_fd``
    (clone3 with CLONE_INTO_CGROUP, Linux 5.7+).

    Seeding a cgroup this way takes none of the locks that moving a process does (a move
    through ``cgroup.procs`` can wait out an RCU grace period). Called from a single-threaded
    process only, like os.fork it runs CPython's before/after-fork hooks; the child should do
    little but exec (glibc's cached thread id is the parent's in it).

    Returns:
        The child's pid in the parent, 0 in the child.
    Raises:
        OSError: clone3 failed (ENOSYS on older kernels): nothing was forked.
    """
    import signal

    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd)
    syscall = _pylibc.syscall  # a PyDLL call keeps the GIL across it, as os.fork does
    syscall.restype = ctypes.c_long
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = syscall(ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, "clone3: %s" % os.strerror(err))
    return pid


def open_namespace(pid: int, kind: str):
    """An fd of process ``pid``'s namespace ``kind`` ("cgroup", "net", …), or None when it is ours."""
    path = "/proc/%d/ns/%s" % (pid, kind)
    if os.stat(path).st_ino == os.stat("/proc/self/ns/%s" % kind).st_ino:
        return None
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def join_namespaces(pid: int, kinds) -> None:
    """Join the namespaces ``kinds`` (e.g. ["ipc", "uts", "net", "pid", "mnt"]) of process ``pid``.

    Namespaces that are already ours are skipped (setns into one's own user namespace fails).
    The mount namespace should come last: it changes what ``/proc`` paths mean; a user
    namespace comes after those its owner (the host) created (pid) and before the mount one.

    Returns:
        The kinds actually joined (call ``become_root`` after joining "user").
    """
    fds, joined = [], []
    try:
        for kind in kinds:
            path = "/proc/%d/ns/%s" % (pid, kind)
            if os.stat(path).st_ino == os.stat("/proc/self/ns/%s" % kind).st_ino:
                continue
            fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), NS_FLAGS[kind]))
            joined.append(kind)
        for fd, flag in fds:
            setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)
    return joined


def become_root() -> None:
    """Be root of the user namespace just entered: its uid and gid 0, no supplementary group.

    Until then the process keeps the host ids it had (0), which the namespace does not map:
    the host would still see host root touching files.
    """
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def write_id_maps(pid: int, uid_map, gid_map) -> None:
    """Write ``[[inside, outside, count]…]`` maps for the user namespace process ``pid`` made
    (one write each, as the kernel requires; the caller is root of the parent namespace)."""
    for name, idmap in (("uid_map", uid_map), ("gid_map", gid_map)):
        fd = os.open("/proc/%d/%s" % (pid, name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, "".join("%d %d %d\n" % tuple(e) for e in idmap).encode())
        finally:
            os.close(fd)


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (a new one starts with it down)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))
