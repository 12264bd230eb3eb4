"""Where the cgroup hierarchies are, where a container's cgroup goes, and making it.

Cgroup v1, v2, or a mix of both, decided per controller.

Where a container's cgroup lives, per hierarchy:
- v1: ``<mount>/<the cgroup the engine runs in>/hostbridge/<name>``. Nesting under our own
  cgroup keeps any limit put on the engine (e.g. a sandbox's memory cgroup) over its containers.
- v2: ``<mount>/hostbridge/<name>``. v2 forbids enabling controllers for children of a cgroup
  that holds processes, and the engine's own cgroup does hold one; the root is exempt. A
  namespaced root (the mount of an engine in its own cgroup namespace) is not: its processes
  move to ``<mount>/init`` first (``evacuate``), so that it can delegate.
- systemd's tracking hierarchies (v1 ``name=systemd``, a hybrid host's cgroup2 mount):
  ``<mount>/hostbridge/<name>``, outside the engine's unit.
``cgroups.Cgroup(name, paths=…)`` reopens a cgroup whose paths were recorded (e.g. by the shim), so a
process in another cgroup still finds it.
"""

from __future__ import annotations

import errno
import os

PARENT = "hostbridge"
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "devices")
# Hierarchies without limits that systemd tracks units by: a container must leave the
# engine's unit there too, or stopping the engine's service would kill it (runc does the same).
SYSTEMD, UNIFIED = "name=systemd", "unified"
# The leaf a namespaced v2 root's own processes move to (docker-in-docker's name for it).
INIT_LEAF = "init"
UNIFIED_MOUNT = "/sys/fs/cgroup"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def hierarchies(mountinfo: str | None = None) -> list:
    """Every cgroup mount: ``[(fstype, mount point, [super options]), …]`` (mountinfo order).

    Args:
        mountinfo: a mount table in /proc/self/mountinfo's format (default: this process's).
    """
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) >= 3 and fields[0] in ("cgroup", "cgroup2"):
            out.append((fields[0], left.split()[4], fields[2].split(",")))
    return out


def _mounts(hier: list | None = None) -> tuple:
    """``({controller: v1 mount}, v2 mount or None)`` from ``hierarchies()``' list.

    A cgroup2 mount at /sys/fs/cgroup (a unified host) wins over others (a hybrid host's
    /sys/fs/cgroup/unified, a tool's private mount).
    """
    v1, v2 = {}, None
    for fstype, mnt, opts in hierarchies() if hier is None else hier:
        if fstype == "cgroup2":
            if v2 is None or mnt == UNIFIED_MOUNT:
                v2 = mnt
            continue
        for opt in opts:
            if opt in CONTROLLERS or opt == SYSTEMD:
                v1.setdefault(opt, mnt)
    return v1, v2


def _own_paths() -> tuple:
    """``({controller: path}, v2 path)`` of this process, from /proc/self/cgroup."""
    v1, v2 = {}, "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                v2 = path
            for c in ctrls.split(","):
                v1[c] = path
    return v1, v2


def layout(hier: list | None = None, v2_controllers=None) -> dict:
    """Where each controller lives: ``{controller: ("v1", mount) | ("v2", mount)}``.

    A controller bound to a v1 hierarchy is v1 (a controller lives in one hierarchy only);
    otherwise v2 when the v2 root offers it. Absent controllers are left out. The v2 mount,
    if any, is also given as ``UNIFIED``, and v1's ``name=systemd`` as ``SYSTEMD``.

    Args:
        hier: ``hierarchies()``' list (default: this process's mounts).
        v2_controllers: what the v2 root offers (default: its cgroup.controllers file).
    """
    v1, v2 = _mounts(hier)
    v2_ctrls = set(v2_controllers or ())
    if v2 and v2_controllers is None:
        try:
            v2_ctrls = set(_read(os.path.join(v2, "cgroup.controllers")).split())
        except OSError:
            pass
    out = {}
    for c in CONTROLLERS:
        if c in v1:
            out[c] = ("v1", v1[c])
        elif v2 and (c in v2_ctrls or c in ("cpuacct", "freezer", "devices")):
            # v2 accounts cpu usage and freezes in its core files, with no controller, and
            # guards devices with an eBPF program
            out[c] = ("v2", v2)
    if SYSTEMD in v1:
        out[SYSTEMD] = ("v1", v1[SYSTEMD])
    if v2:
        out[UNIFIED] = ("v2", v2)
    return out


def version(lay: dict | None = None) -> str:
    """docker info's CgroupVersion: "2" on a unified host (no v1 hierarchy at all), else "1".

    Args:
        lay: a ``layout()`` result (default: this host's).
    """
    lay = layout() if lay is None else lay
    unified = UNIFIED in lay and not any(v == "v1" for v, _ in lay.values())
    return "2" if unified else "1"


def features(lay: dict | None = None) -> dict:
    """docker info's limit flags (MemoryLimit, SwapLimit, CpuCfsQuota, …): what this host can limit.

    Without a flag the docker CLI warns ("WARNING: No memory limit support"), as it does for dockerd
    on such a host. Swap: v2 limits it with the memory controller, v1 only with swap accounting on.

    Args:
        lay: a ``layout()`` result (default: this host's).
    """
    lay = layout() if lay is None else lay
    mem = lay.get("memory")
    swap = bool(mem) and (mem[0] == "v2" or os.path.exists(os.path.join(mem[1], "memory.memsw.limit_in_bytes")))
    cpu = "cpu" in lay
    return {"MemoryLimit": bool(mem), "SwapLimit": swap, "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu,
            "CPUShares": cpu, "CPUSet": "cpuset" in lay, "PidsLimit": "pids" in lay}


def swappiness(lay: dict | None = None) -> bool:
    """Whether ``--memory-swappiness`` can be applied: v1's memory controller only (v2 has no knob)."""
    mem = (layout() if lay is None else lay).get("memory")
    return bool(mem) and mem[0] == "v1" and os.path.exists(os.path.join(mem[1], "memory.swappiness"))


def feature_warnings(feats: dict) -> list:
    """dockerd's docker info warnings for the limits ``features()`` says are missing."""
    names = (("MemoryLimit", "memory limit"), ("SwapLimit", "swap limit"), ("CpuCfsQuota", "cpu cfs quota"),
             ("CpuCfsPeriod", "cpu cfs period"), ("CPUShares", "cpu shares"), ("CPUSet", "cpuset"))
    return ["WARNING: No %s support" % text for key, text in names if not feats.get(key)]


def default_paths(name: str, where: dict | None = None) -> dict:
    """``{controller: directory}`` for a new container cgroup called ``name``.

    Args:
        name: the leaf name.
        where: a ``layout()`` result to use instead of this host's.
    """
    own_v1, _ = _own_paths()
    out = {}
    for c, (ver, mnt) in (layout() if where is None else where).items():
        if ver == "v1":
            base = "/" if c == SYSTEMD else own_v1.get(c, "/")
            # a process already inside a container cgroup places siblings, not children
            marker = "/%s/" % PARENT
            if marker in base + "/":
                base = base[: (base + "/").index(marker)] or "/"
            out[c] = os.path.normpath(os.path.join(mnt, base.lstrip("/"), PARENT, name))
        else:
            out[c] = os.path.join(mnt, PARENT, name)
    return out


def _v2_enable(path: str, ctrls) -> list:
    """Enable ``ctrls`` for the children of every cgroup from the v2 root down to ``path``'s parent.

    Returns:
        What failed, as ``"+memory in DIR: error"`` (a limit needing it then fails, saying why).
    """
    failed = []
    if not ctrls:
        return failed
    os.makedirs(os.path.dirname(path), exist_ok=True)  # the first container makes our parent
    parts, cur = [], os.path.dirname(path)
    while os.path.exists(os.path.join(cur, "cgroup.subtree_control")):
        parts.append(cur)
        if os.path.ismount(cur):
            break
        cur = os.path.dirname(cur)
    for d in reversed(parts):
        for c in ctrls:  # one at a time: a write naming an unavailable one fails whole
            try:
                _enable(d, c)
            except OSError as e:
                failed.append("+%s in %s: %s" % (c, d, e.strerror or e))
    return failed


def _enable(cgroup: str, controller: str) -> None:
    """``+controller`` in ``cgroup``'s subtree_control; a namespace root is emptied first if need be.

    v2's "no internal processes" rule (EBUSY) spares the real root only. The root of a cgroup
    namespace (the engine in a container, or in a unit with a namespace of its own) holds the
    engine itself: its processes move to the leaf ``init``, as docker-in-docker does.
    """
    control = os.path.join(cgroup, "cgroup.subtree_control")
    try:
        _write(control, "+" + controller)
    except OSError as e:
        if e.errno != errno.EBUSY or not os.path.ismount(cgroup):
            raise
        evacuate(cgroup)
        _write(control, "+" + controller)


def evacuate(cgroup: str, leaf: str = INIT_LEAF) -> str:
    """Move every process of ``cgroup`` into its child ``leaf``; return the leaf's path.

    Bounded: processes forking meanwhile are moved on the next pass, up to 50 passes.

    Raises:
        OSError: the cgroup still holds processes after that (EBUSY), or a move was refused.
    """
    dest = os.path.join(cgroup, leaf)
    os.makedirs(dest, exist_ok=True)
    for _ in range(50):
        pids = _read(os.path.join(cgroup, "cgroup.procs")).split()
        if not pids:
            return dest
        for pid in pids:
            try:
                _write(os.path.join(dest, "cgroup.procs"), pid)
            except ProcessLookupError:
                pass  # exited meanwhile
    raise OSError(errno.EBUSY, "%s keeps gaining processes" % cgroup)


def _v1_mkdirs(path: str, controller: str) -> None:
    """mkdir -p a v1 cgroup; cpuset children need cpus and mems copied from their parent."""
    missing, cur = [], path
    while not os.path.isdir(cur):
        missing.append(cur)
        cur = os.path.dirname(cur)
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            pass
        if controller == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(d, f)):
                    _write(os.path.join(d, f), _read(os.path.join(os.path.dirname(d), f)))


def join_from_inside(dirs, v2: str = "move"):
    """Put the calling process into cgroup directories ``dirs`` without the kernel's global lock
    where that can be done. The caller must be single-threaded.

    A ``cgroup.procs`` write (moving a whole process) write-locks a global rwsem, and the first
    such move in a while waits out an RCU grace period (5-15 ms). In v1 a thread that moves
    itself (``tasks``, pid 0) skips that lock; a single-threaded process moves whole, and what
    it forks afterwards is born inside. v2 has no such file: a process is best *forked* into a
    v2 cgroup (``ns.fork_into_cgroup``), which takes no lock either.

    Args:
        dirs: the cgroup directories (v1 ones have a ``tasks`` file, v2 ones do not).
        v2: for the v2 directory: ``"move"`` (through ``cgroup.procs``), ``"open"`` (return it,
            opened, to fork into), or ``"skip"`` (the caller was born there).
    Returns:
        With ``"open"``, an fd of the v2 directory (None without one); else None.
    """
    opened = None
    for d in dirs:
        try:  # no O_CREAT: a v2 directory has no tasks file and must say so
            fd = os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if v2 == "open" and opened is None:
                opened = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            elif v2 != "skip":
                _write(os.path.join(d, "cgroup.procs"), os.getpid())
            continue
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    return opened
