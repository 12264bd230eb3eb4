"""The container's filesystem, built inside its fresh mount namespace.

Order (as runc): make every mount private; mount the root (overlay or a bind of a vfs dir);
/proc, /dev (+pts, shm, mqueue), /sys; the init binary at /sbin/docker-init; the config's mounts; pivot_root and drop the old root;
then mask and read-only paths, which name container paths.
Nothing here leaks to the host: all of it lives and dies in the container's mount namespace.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from ..errors import InvalidParameter
from . import cgroups, initbin, ns, safepath

MASKED = ["/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
          "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
          "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
            ("urandom", 1, 9), ("tty", 5, 0)]
_MOUNT_FLAGS = {"ro": ns.MS_RDONLY, "nosuid": ns.MS_NOSUID, "nodev": ns.MS_NODEV,
                "noexec": ns.MS_NOEXEC, "noatime": ns.MS_NOATIME}
_MOUNT_DATA_MAX = 4000
_OWN_HIERARCHIES = set(cgroups.CONTROLLERS) | {cgroups.SYSTEMD}
_IGNORED_OPTS = {"rw", "bind", "rbind", "private", "rprivate", "slave", "rslave", "shared",
                 "rshared", "z", "Z", "nocopy"}


def secure_join(root: str, path: str) -> str:
    """``root`` + ``path`` with every symlink resolved as if ``root`` were ``/``.

    A link can never lead outside ``root``: ``..`` stops at it and absolute targets restart at it.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved, links = [], 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cur = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:
                raise OSError(errno.ELOOP, "too many links resolving %s" % path)
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def make_private() -> None:
    """Stop mount events flowing between this namespace and the host's, both ways."""
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)


def mount_root(rootfs: dict) -> str:
    """Mount the container's root as config.json's "rootfs" says; return its path."""
    if rootfs.get("driver", "overlay") == "overlay":
        merged = rootfs["merged"]
        os.makedirs(merged, exist_ok=True)
        lower = list(rootfs["lower"])
        data = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(lower), rootfs["upper"], rootfs["work"])
        if len(data) > _MOUNT_DATA_MAX:
            # the options must fit a page: name the layers relative to their common parent
            base = os.path.commonpath(lower)
            os.chdir(base)
            data = "lowerdir=%s,upperdir=%s,workdir=%s" % (
                ":".join(os.path.relpath(p, base) for p in lower), rootfs["upper"], rootfs["work"])
            if len(data) > _MOUNT_DATA_MAX:
                raise OSError(errno.E2BIG, "too many image layers (%d) for one overlay mount" % len(lower))
        ns.mount("overlay", merged, "overlay", 0, data)
        os.chdir("/")
        return merged
    path = rootfs["path"]
    ns.mount(path, path, None, ns.MS_BIND | ns.MS_REC)  # pivot_root needs a mount point
    return path


def _mkdir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _mkfile(path: str) -> None:
    _mkdir(os.path.dirname(path))
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _split_opts(options) -> tuple:
    flags, data = 0, []
    for o in options or ():
        if o in _MOUNT_FLAGS:
            flags |= _MOUNT_FLAGS[o]
        elif o not in _IGNORED_OPTS:
            data.append(o)
    return flags, ",".join(data) or None


def mount_dev(root: str) -> None:
    """A tmpfs /dev with the standard nodes, a private devpts, shm and mqueue."""
    dev = secure_join(root, "/dev")
    _mkdir(dev)
    ns.mount("tmpfs", dev, "tmpfs", ns.MS_NOSUID | ns.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in _DEVICES:
        p = os.path.join(dev, name)
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(p, 0o666)
        except OSError:
            _mkfile(p)  # no mknod allowed (a user namespace): bind the host's node instead
            ns.mount("/dev/" + name, p, None, ns.MS_BIND)
    pts = os.path.join(dev, "pts")
    _mkdir(pts)
    ns.mount("devpts", pts, "devpts", ns.MS_NOSUID | ns.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    _mkdir(shm)
    ns.mount("shm", shm, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC,
             "mode=1777,size=65536k")
    mq = os.path.join(dev, "mqueue")
    _mkdir(mq)
    try:
        ns.mount("mqueue", mq, "mqueue", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    except OSError:
        os.rmdir(mq)  # mqueue needs an IPC namespace of our own; absent with --ipc host
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("core", "/proc/kcore")):
        os.symlink(target, os.path.join(dev, link))


def mount_proc(root: str) -> None:
    """/proc of the container's pid namespace."""
    proc = secure_join(root, "/proc")
    _mkdir(proc)
    ns.mount("proc", proc, "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)


def mount_proc_sys(root: str, new_netns: bool, privileged: bool, proc: bool = True) -> None:
    """/proc of the container's pid namespace (unless ``proc`` is False: mounted already) and a
    fresh (read-only unless privileged) sysfs.

    Fresh with the host's network too, as docker does: a bind of the host's /sys would bring
    its submounts (tracefs, debugfs, configfs, securityfs), and a read-only remount of a
    recursive bind leaves those writable.
    """
    if proc:
        mount_proc(root)
    sys_ = secure_join(root, "/sys")
    _mkdir(sys_)
    ro = 0 if privileged else ns.MS_RDONLY
    flags = ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC
    try:
        ns.mount("sysfs", sys_, "sysfs", flags | ro)
    except PermissionError:
        if new_netns:
            raise
        # sysfs may only be mounted by the network namespace's owner (an engine in a user
        # namespace, sharing the host's network): bind /sys alone, none of its submounts
        ns.mount("/sys", sys_, None, ns.MS_BIND)
        ns.mount(None, sys_, None, ns.MS_BIND | ns.MS_REMOUNT | flags | ro)


def mount_cgroups(root: str) -> None:
    """A read-only /sys/fs/cgroup showing the container's own cgroups, as docker gives.

    Call only in a cgroup namespace of the container's own: a cgroup mount shows the tree from
    the namespace's root, which is then the container's cgroup.
    """
    v1, v2 = [], None
    for fstype, mnt, options in cgroups.hierarchies():
        if fstype == "cgroup2":
            v2 = v2 or mnt
            continue
        opts = [o for o in options if o not in ("rw", "ro")
                and not o.startswith(("release_agent", "clone_children", "xattr"))]
        # only hierarchies the container has a cgroup of its own in: the namespace root of
        # any other (blkio here) would be a host cgroup
        if set(opts) & _OWN_HIERARCHIES and (os.path.basename(mnt), opts) not in v1:
            v1.append((os.path.basename(mnt), opts))
    if not v1 and not v2:
        return
    base = secure_join(root, "/sys/fs/cgroup")
    flags = ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC | ns.MS_RDONLY
    if not v1:
        ns.mount("cgroup2", base, "cgroup2", flags)
        return
    ns.mount("tmpfs", base, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC, "mode=755")
    for name, opts in v1:
        _mkdir(os.path.join(base, name))
        ns.mount("cgroup", os.path.join(base, name), "cgroup", flags, ",".join(opts))
    if v2:
        _mkdir(os.path.join(base, "unified"))
        ns.mount("cgroup2", os.path.join(base, "unified"), "cgroup2", flags)
    ns.mount(None, base, None, ns.MS_REMOUNT | flags, "mode=755")


def mount_extra(root: str, m: dict) -> None:
    """One config.json mount (bind or tmpfs) onto its destination inside ``root``.

    The destination is resolved (and created) by descriptors inside ``root`` and the mount made
    onto ``/proc/self/fd/N``: a volume shared with another container, which swaps a component
    for a symlink meanwhile, cannot send the mount to a host path (CVE-2021-30465's class).
    A read-only ``rbind`` is read-only all the way down, submounts included.
    """
    opts = list(m.get("options") or [])
    flags, data = _split_opts(opts)
    tmpfs = m.get("type", "bind") == "tmpfs"
    src = m.get("source")
    kind = "dir" if tmpfs or os.path.isdir(src) else "file"
    fd = safepath.open_in_root(root, m["destination"], create=kind)
    try:
        if tmpfs:
            ns.mount("tmpfs", safepath.fd_path(fd), "tmpfs", flags | ns.MS_NOSUID | ns.MS_NODEV, data)
            return
        rec = ns.MS_REC if "rbind" in opts else 0
        ns.mount(src, safepath.fd_path(fd), None, ns.MS_BIND | rec)
    finally:
        os.close(fd)
    if not flags:
        return
    # the new mount's root: the descriptor above still holds the directory it covers
    fd = safepath.open_in_root(root, m["destination"])
    try:
        ns.mount(None, safepath.fd_path(fd), None, ns.MS_BIND | ns.MS_REMOUNT | flags)
        if rec and flags & ns.MS_RDONLY:
            safepath.make_readonly(fd, recursive=True)
    finally:
        os.close(fd)


def pivot(root: str) -> None:
    """Make ``root`` the process's ``/`` and detach the old root entirely."""
    os.chdir(root)
    ns.pivot_root(".", ".")  # the old root ends up stacked on "/": unmount it right away
    ns.umount2(".", ns.MNT_DETACH)
    os.chdir("/")


def mask_paths(paths=MASKED) -> None:
    """Hide container paths: /dev/null over files, an empty read-only tmpfs over directories.

    A path this kernel lacks needs no mask; any other failure stops the start (a path left
    unmasked, /proc/kcore say, is not a container docker would run).

    Raises:
        OSError: a mount failed (naming the path).
    """
    for p in paths:
        try:
            if os.path.isdir(p):
                ns.mount("tmpfs", p, "tmpfs", ns.MS_RDONLY, None)
            else:
                ns.mount("/dev/null", p, None, ns.MS_BIND)
        except FileNotFoundError:
            continue  # absent on this kernel


def kept_flags(path: str) -> int:
    """The nosuid/nodev/noexec/noatime flags ``path``'s mount has: a bind remount keeps them.

    In a user namespace they are locked on mounts made by the host (a remapped container's
    /proc and root), and a remount that drops one is refused (EPERM).
    """
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in ((os.ST_NOSUID, ns.MS_NOSUID), (os.ST_NODEV, ns.MS_NODEV),
                                 (os.ST_NOEXEC, ns.MS_NOEXEC), (os.ST_NOATIME, ns.MS_NOATIME)) if f & st)


def readonly_paths(paths=READONLY) -> None:
    """Bind container paths onto themselves read-only."""
    for p in paths:
        if not os.path.exists(p):
            continue
        ns.mount(p, p, None, ns.MS_BIND | ns.MS_REC)
        ns.mount(None, p, None, ns.MS_BIND | ns.MS_REMOUNT | ns.MS_RDONLY | ns.MS_REC | kept_flags(p))


def readonly_root() -> None:
    """Remount ``/`` read-only (--read-only); mounts under it keep their own flags."""
    ns.mount(None, "/", None, ns.MS_BIND | ns.MS_REMOUNT | ns.MS_RDONLY | kept_flags("/"))


# Sysctls a container may set (docker's and runc's list): those its own IPC, mqueue and network
# namespaces hold. Any other /proc/sys file is the host's: kernel.core_pattern names a program
# the host kernel runs as root.
_NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                       "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_SYSCTL_KEY = re.compile(r"^[a-zA-Z0-9_-]+(?:[./][a-zA-Z0-9_-]+)*$")


def check_sysctl(key: str, host_network: bool = False, host_ipc: bool = False) -> None:
    """Refuse a sysctl that is not namespaced (it would change the host) or is not a plain name.

    Raises:
        InvalidParameter: names the sysctl and why.
    """
    if not isinstance(key, str) or not _SYSCTL_KEY.match(key):
        raise InvalidParameter("invalid sysctl name %r" % (key,))
    if key in _NAMESPACED_SYSCTLS or key.startswith("fs.mqueue."):
        if host_ipc:
            raise InvalidParameter("sysctl %s is not allowed when sharing the host's IPC namespace (--ipc host)" % key)
        return
    if key.startswith("net."):
        if host_network:
            raise InvalidParameter("sysctl %s is not allowed when using the host network (--network host)" % key)
        return
    raise InvalidParameter("sysctl %s is not allowed in a container: it is not namespaced and would change "
                           "the host" % key)


def write_sysctls(sysctls: dict, host_network: bool = False, host_ipc: bool = False) -> None:
    """Write ``{"net.ipv4.ip_forward": "1"}`` style settings under /proc/sys (namespaced ones only)."""
    for key, value in (sysctls or {}).items():
        check_sysctl(key, host_network, host_ipc)
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))


def init_binary(proc: dict) -> str:
    """The host path of the init binary config.json's "process" runs as pid 1; "" for none
    (no ``init``, or ``init`` with no ``init_path``: the built-in init)."""
    return (proc.get("init_path") or "") if proc.get("init") else ""


def _in_kernel_tree(m: dict) -> bool:
    """A mount onto /dev, /proc or /sys (a --device node, say): it goes over the runtime's own."""
    d = m["destination"].rstrip("/") or "/"
    return any(d == p or d.startswith(p + "/") for p in ("/dev", "/proc", "/sys"))


def _sorted_mounts(config: dict) -> list:
    return sorted(config.get("mounts") or [], key=lambda m: m["destination"].count("/"))


def setup_before_userns(config: dict) -> None:
    """A remapped container's first half, as host root in a mount namespace of its own made
    before the user namespace is entered: the root, /proc (the pid namespace is the host's
    making), the init binary and the config's binds (their host paths may be unreachable from
    the remapped root: the engine's dirs are 0700).

    Leaves the process in the root's parent dir (the engine makes it searchable by the
    remapped root): ``setup(config, premounted=True)`` goes on from there by a relative path.
    The next mount namespace's copy keeps the working directory, while a host path would be
    looked up as the remapped root.
    """
    make_private()
    root = mount_root(config["rootfs"])
    mount_proc(root)
    init_path = init_binary(config.get("process") or {})
    if init_path:
        mount_extra(root, initbin.bind_mount(init_path))
    for m in _sorted_mounts(config):
        if not _in_kernel_tree(m):
            mount_extra(root, m)
    os.chdir(os.path.dirname(root))


def _premounted_root(config: dict) -> str:
    """The root as ``setup_before_userns`` left it, bound onto itself in this mount namespace:
    mounts copied from a more privileged namespace are locked, and pivot_root refuses those."""
    rootfs = config["rootfs"]
    root = os.path.basename(rootfs["merged"] if rootfs.get("driver", "overlay") == "overlay" else rootfs["path"])
    ns.mount(root, root, None, ns.MS_BIND | ns.MS_REC)
    return root


def setup(config: dict, cgroupns: bool = False, premounted: bool = False) -> None:
    """Build the whole container filesystem from config.json and pivot into it.

    Call in the container's own mount namespace (and new pid namespace, for /proc); with
    ``cgroupns`` (a cgroup namespace of its own) it also gets a read-only /sys/fs/cgroup.
    With ``premounted``, ``setup_before_userns`` did the first half.
    """
    proc_cfg = config.get("process") or {}
    privileged = bool(proc_cfg.get("privileged"))
    net = (config.get("namespaces") or {}).get("net", "new")
    make_private()
    root = _premounted_root(config) if premounted else mount_root(config["rootfs"])
    mount_proc_sys(root, net != "host", privileged, proc=not premounted)
    if cgroupns:
        mount_cgroups(root)
    mount_dev(root)
    init_path = init_binary(proc_cfg)
    if init_path and not premounted:
        # before the config's mounts, as dockerd orders them: a volume over /sbin hides it
        mount_extra(root, initbin.bind_mount(init_path))
    for m in _sorted_mounts(config):
        if not premounted or _in_kernel_tree(m):
            mount_extra(root, m)
    pivot(root)
    write_sysctls(config.get("sysctls"), net == "host", (config.get("namespaces") or {}).get("ipc") == "host")
    if not privileged:
        mask_paths()
        readonly_paths()
    if (config.get("rootfs") or {}).get("readonly"):
        readonly_root()
