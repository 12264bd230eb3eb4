"""One container's cgroup across every hierarchy: limits, stats, freezing, device rules, removal.

Placement and detection (v1, v2 or both, per controller) are ``cgroupfs``'s; its names are
re-exported here for callers that know only this module.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ..errors import Unavailable
from . import devices
from .cgroupfs import (CONTROLLERS, PARENT, SYSTEMD, UNIFIED, _read, _v1_mkdirs, _v2_enable, _write,
                       default_paths, evacuate, feature_warnings, features, hierarchies, layout,
                       swappiness, version)

__all__ = ["Cgroup", "CONTROLLERS", "DEFAULT_DEVICES", "PARENT", "SYSTEMD", "UNIFIED", "Unavailable",
           "default_paths", "device_rule", "evacuate", "feature_warnings", "features", "hierarchies", "layout",
           "swappiness", "version"]

# docker's (runc's) device rules: mknod anything, open only the harmless nodes and ptys
DEFAULT_DEVICES = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                   "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                   "c 10:200 rwm"]
_CFS_PERIOD_US = 100000


def device_rule(path: str, access: str = "rwm"):
    """The allow rule for device node ``path`` ("c 10:229 rwm"), or None if it is not one."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return "%s %d:%d %s" % (kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)


class Cgroup:
    """One container's cgroup across all hierarchies.

    Args:
        name: the leaf name (the container id).
        paths: recorded ``{controller: directory}``; computed from this process when omitted.
        where: a ``layout()`` to use instead of this host's (e.g. only the v2 hierarchy).
    """

    def __init__(self, name: str, paths: dict | None = None, where: dict | None = None):
        self.name = name
        lay = layout() if where is None else where
        self.paths = dict(paths) if paths else default_paths(name, lay)
        self._ver = {c: lay.get(c, ("v1", ""))[0] for c in self.paths}
        # v2 alone: a controller missing there is one the parent cgroup did not delegate
        self._v2_only = lay[UNIFIED][1] if version(lay) == "2" else None
        self._not_delegated = []  # "+memory in DIR: error" where create could not enable one

    def v2_dir(self):
        """This cgroup's directory in the v2 hierarchy (there is one at most), or None."""
        return next((p for c, p in self.paths.items() if self._ver.get(c) == "v2"), None)

    def dirs(self) -> list:
        """The distinct cgroup directories (a v2 cgroup serves several controllers)."""
        seen = []
        for p in self.paths.values():
            if p not in seen:
                seen.append(p)
        return seen

    def _path(self, controller: str):
        return self.paths.get(controller)

    def _need(self, controller: str) -> str:
        p = self._path(controller)
        if p is None:
            if self._v2_only:
                raise Unavailable("the %s cgroup controller is not available on this host (not in %s): "
                                  "delegate it to the engine (systemd: Delegate=yes) or run without that limit"
                                  % (controller, os.path.join(self._v2_only, "cgroup.controllers")))
            raise Unavailable("the %s cgroup controller is not available on this host: "
                              "run without that limit" % controller)
        return p

    def create(self, limits: dict | None = None) -> None:
        """Make the cgroup directories and apply ``limits`` (keys as config.json's "cgroup").

        Raises:
            Unavailable: a requested limit needs a controller this host lacks, or a write failed.
        """
        v2_ctrls = [c for c in ("memory", "cpu", "pids", "cpuset")
                    if c in self.paths and self._ver[c] == "v2"]
        made = set()
        for c, p in self.paths.items():
            if self._ver[c] != "v2":
                _v1_mkdirs(p, c)
            elif p not in made:  # one v2 directory serves every v2 controller
                self._not_delegated += _v2_enable(p, v2_ctrls)
                os.makedirs(p, exist_ok=True)
                made.add(p)
        self.update(limits or {})

    def restrict_devices(self, allow_all: bool = False, extra=()) -> None:
        """Apply docker's device rules (all devices when ``allow_all``, i.e. privileged).

        Without them a container holding CAP_MKNOD could make and open the host's disks.
        v1 has devices.allow/deny files; v2 gets an eBPF program (``devices.py``).

        Args:
            allow_all: no restriction at all (--privileged).
            extra: more allow rules in devices.allow syntax ("c 10:229 rwm"), e.g. --device.
        Raises:
            Unavailable: the rules cannot be applied (no devices cgroup, or the kernel refused
                them): the container must not start without them.
        """
        rules = DEFAULT_DEVICES + [r for r in extra if r not in DEFAULT_DEVICES]
        p = self._path("devices")
        if p is None:
            if allow_all:
                return
            # fail closed: with no device rule a container with CAP_MKNOD opens the host's disks
            raise Unavailable("cannot restrict the devices of %s: this host has no devices cgroup "
                              "(v1) or cgroup2 to attach a device program to; refusing to start "
                              "the container without device rules" % self.name)
        try:
            if self._ver["devices"] == "v2":
                if not allow_all:
                    devices.attach(p, rules)
                return
            if allow_all:
                _write(os.path.join(p, "devices.allow"), "a")
                return
            _write(os.path.join(p, "devices.deny"), "a")
            for rule in rules:
                _write(os.path.join(p, "devices.allow"), rule)
        except OSError as e:
            raise Unavailable("cannot set the device rules of %s: %s" % (self.name, e)) from e

    def update(self, limits: dict) -> None:
        """Change limits of a live cgroup; zero / missing values leave a limit as it is.

        Args:
            limits: config.json's "cgroup" keys: memory, memory_swap (-1: unlimited),
                memory_reservation, nano_cpus, cpu_quota (-1: none), cpu_period, cpu_shares,
                pids_limit (negative: none), cpuset_cpus.
        Raises:
            Unavailable: a limit needs a controller this cgroup lacks, or the kernel refused it.
        """
        try:
            self._set_memory(limits)
            self._set_cpu(limits)
            pids = int(limits.get("pids_limit") or 0)
            if pids > 0 or (pids < 0 and self._path("pids")):  # no controller: unlimited already
                _write(os.path.join(self._need("pids"), "pids.max"), "max" if pids < 0 else pids)
            cpus = limits.get("cpuset_cpus") or ""
            if cpus:
                _write(os.path.join(self._need("cpuset"), "cpuset.cpus"), cpus)
        except OSError as e:
            why = "; ".join(self._not_delegated)
            raise Unavailable("cannot set cgroup limits for %s: %s%s" % (
                self.name, e, " (controllers not delegated: %s)" % why if why else "")) from e

    def _set_memory(self, limits: dict) -> None:
        memory, swap = int(limits.get("memory") or 0), int(limits.get("memory_swap") or 0)
        reservation = int(limits.get("memory_reservation") or 0)
        swappiness = int(-1 if limits.get("memory_swappiness") is None else limits["memory_swappiness"])
        if swappiness >= 0 and self._path("memory") and self._ver["memory"] != "v2":
            pass  # a swappiness alone is reason enough to visit the memory controller
        elif not (memory or swap > 0 or reservation) and not (swap < 0 and self._path("memory")):
            return
        p = self._need("memory")
        # docker: unset swap means as much swap as memory (total 2x); -1 means unlimited
        if memory and swap == 0:
            swap = 2 * memory
        if self._ver["memory"] == "v2":
            if memory:
                _write(os.path.join(p, "memory.max"), memory)
            if reservation:  # runc's mapping of --memory-reservation: best-effort protection
                _write(os.path.join(p, "memory.low"), reservation)
            if swap and os.path.exists(os.path.join(p, "memory.swap.max")):
                # v2 limits swap alone where docker's --memory-swap counts memory + swap
                _write(os.path.join(p, "memory.swap.max"),
                       "max" if swap < 0 else max(swap - (memory or 0), 0))
            return
        if reservation:
            _write(os.path.join(p, "memory.soft_limit_in_bytes"), reservation)
        if swappiness >= 0 and os.path.exists(os.path.join(p, "memory.swappiness")):
            _write(os.path.join(p, "memory.swappiness"), swappiness)  # v1 only: v2 has no such knob
        mem_f = os.path.join(p, "memory.limit_in_bytes")
        sw_f = os.path.join(p, "memory.memsw.limit_in_bytes")
        writes = [(mem_f, memory)] if memory else []
        if swap and os.path.exists(sw_f):
            writes.append((sw_f, -1 if swap < 0 else swap))
        # memsw must stay >= memory: the right order depends on growing or shrinking
        try:
            for f, v in writes:
                _write(f, v)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            for f, v in reversed(writes):
                _write(f, v)

    def _set_cpu(self, limits: dict) -> None:
        nano_cpus, shares = int(limits.get("nano_cpus") or 0), int(limits.get("cpu_shares") or 0)
        quota, period = int(limits.get("cpu_quota") or 0), int(limits.get("cpu_period") or 0)
        if nano_cpus:  # --cpus is docker's shorthand for a quota over the default period
            quota, period = nano_cpus * _CFS_PERIOD_US // 10 ** 9, _CFS_PERIOD_US
        if not (quota or period or shares):
            return
        p = self._need("cpu")
        if self._ver["cpu"] == "v2":
            if quota or period:
                # runc's form: "max" lifts the quota, a missing period keeps the current one
                value = str(quota) if quota > 0 else "max"
                _write(os.path.join(p, "cpu.max"), value + (" %d" % period if period else ""))
            if shares:
                _write(os.path.join(p, "cpu.weight"), 1 + ((shares - 2) * 9999) // 262142)
            return
        if period:
            _write(os.path.join(p, "cpu.cfs_period_us"), period)
        if quota:
            _write(os.path.join(p, "cpu.cfs_quota_us"), quota if quota > 0 else -1)
        if shares:
            _write(os.path.join(p, "cpu.shares"), shares)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into every hierarchy of this cgroup."""
        for f in self.procs_files():
            _write(f, pid)

    def procs_files(self) -> list:
        """The ``cgroup.procs`` files a process must be written to, to join this cgroup."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs()]

    def pids(self) -> list:
        """Pids currently in the cgroup (all hierarchies)."""
        out = set()
        for f in self.procs_files():
            try:
                out.update(int(x) for x in _read(f).split())
            except OSError:
                pass
        return sorted(out)

    def stats(self) -> dict:
        """Usage now: ``{"memory": {usage, limit, cache, stats}, "cpu": {total_ns, percpu_ns, user_ns,
        system_ns, throttling}, "pids": {current}}``."""
        out = {"memory": {}, "cpu": {}, "pids": {}}
        mp = self._path("memory")
        if mp and self._ver["memory"] == "v2":
            stat = self._kv(os.path.join(mp, "memory.stat"))
            limit = _read(os.path.join(mp, "memory.max"))
            out["memory"] = {"usage": int(_read(os.path.join(mp, "memory.current"))),
                             "limit": 0 if limit == "max" else int(limit),
                             "cache": stat.get("file", 0), "stats": stat}
        elif mp:
            stat = self._kv(os.path.join(mp, "memory.stat"))
            out["memory"] = {"usage": int(_read(os.path.join(mp, "memory.usage_in_bytes"))),
                             "limit": int(_read(os.path.join(mp, "memory.limit_in_bytes"))),
                             "cache": stat.get("total_cache", stat.get("cache", 0)), "stats": stat}
        out["cpu"] = self._cpu_stats()
        pp = self._path("pids")
        if pp:
            out["pids"] = {"current": int(_read(os.path.join(pp, "pids.current")))}
        return out

    def _cpu_stats(self) -> dict:
        """``{total_ns, percpu_ns, user_ns, system_ns, throttling: {periods, throttled_periods,
        throttled_ns}}`` (throttling only where the cpu controller is on)."""
        cp, qp = self._path("cpuacct"), self._path("cpu")
        if not cp:
            return {}
        if self._ver["cpuacct"] == "v2":
            st = self._kv(os.path.join(cp, "cpu.stat"))
            out = {"total_ns": st.get("usage_usec", 0) * 1000, "percpu_ns": [],
                   "user_ns": st.get("user_usec", 0) * 1000, "system_ns": st.get("system_usec", 0) * 1000}
            if "nr_periods" in st:
                out["throttling"] = {"periods": st["nr_periods"], "throttled_periods": st.get("nr_throttled", 0),
                                     "throttled_ns": st.get("throttled_usec", 0) * 1000}
            return out
        tick = 10 ** 9 // os.sysconf("SC_CLK_TCK")  # cpuacct.stat counts USER_HZ ticks
        st = self._kv(os.path.join(cp, "cpuacct.stat"))
        out = {"total_ns": int(_read(os.path.join(cp, "cpuacct.usage"))),
               "percpu_ns": [int(x) for x in _read(os.path.join(cp, "cpuacct.usage_percpu")).split()],
               "user_ns": st.get("user", 0) * tick, "system_ns": st.get("system", 0) * tick}
        if qp and os.path.exists(os.path.join(qp, "cpu.stat")):
            th = self._kv(os.path.join(qp, "cpu.stat"))
            out["throttling"] = {"periods": th.get("nr_periods", 0), "throttled_periods": th.get("nr_throttled", 0),
                                 "throttled_ns": th.get("throttled_time", 0)}
        return out

    @staticmethod
    def _kv(path: str) -> dict:
        out = {}
        for line in _read(path).splitlines():
            k, _, v = line.partition(" ")
            try:
                out[k] = int(v)
            except ValueError:
                pass
        return out

    def _freeze(self, on: bool) -> None:
        p = self._need("freezer")
        if self._ver["freezer"] == "v2":
            _write(os.path.join(p, "cgroup.freeze"), 1 if on else 0)
            want = "frozen 1" if on else "frozen 0"
            check = lambda: want in _read(os.path.join(p, "cgroup.events"))
        else:
            _write(os.path.join(p, "freezer.state"), "FROZEN" if on else "THAWED")
            want = "FROZEN" if on else "THAWED"
            check = lambda: _read(os.path.join(p, "freezer.state")) == want
        deadline = time.monotonic() + 2
        while not check() and time.monotonic() < deadline:
            time.sleep(0.01)

    def freeze(self) -> None:
        """Freeze every process of the cgroup (docker pause)."""
        self._freeze(True)

    def thaw(self) -> None:
        """Thaw a frozen cgroup (docker unpause)."""
        self._freeze(False)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process in this cgroup."""
        p = self._path("memory")
        if not p:
            return False
        try:
            if self._ver["memory"] == "v2":
                return self._kv(os.path.join(p, "memory.events")).get("oom_kill", 0) > 0
            return self._kv(os.path.join(p, "memory.oom_control")).get("oom_kill", 0) > 0
        except OSError:
            return False

    def kill_all(self) -> None:
        """SIGKILL every process inside: v2's cgroup.kill where the kernel has it (5.14+: no
        fork escapes it, frozen ones die too), else each pid listed."""
        for d in self.dirs():
            try:
                _write(os.path.join(d, "cgroup.kill"), 1)
            except OSError:
                pass  # v1, an older kernel, or gone
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 2.0) -> None:
        """Kill what is left inside, then remove the directories (retrying while they drain)."""
        self.kill_all()
        if self._path("freezer"):
            try:
                self.thaw()  # frozen processes cannot die
            except (OSError, Unavailable):
                pass
        deadline = time.monotonic() + timeout
        for d in self.dirs():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    self.kill_all()
                    time.sleep(0.01)
