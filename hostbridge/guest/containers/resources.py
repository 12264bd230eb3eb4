"""What the cgroup of a running container tells and takes: stats, top, pause, update."""

from __future__ import annotations

import contextlib

import os
import subprocess
import time

from ..errors import Conflict, InvalidParameter
from ..util import ZERO_TIME, now_rfc3339
from .config import validate_host_config


def cgroup_limits(hc: dict) -> dict:
    """The runtime's cgroup limits (config.json's "cgroup" keys) from a docker HostConfig.

    Zero means "not set" (the runtime leaves that limit as it is); a PidsLimit given as 0 or
    less lifts the limit (dockerd's rule), MemorySwap -1 allows unlimited swap.
    """
    pids = hc.get("PidsLimit")
    return {"memory": hc.get("Memory") or 0, "memory_swap": hc.get("MemorySwap") or 0,
            "memory_reservation": hc.get("MemoryReservation") or 0,
            "nano_cpus": hc.get("NanoCpus") or 0, "cpu_shares": hc.get("CpuShares") or 0,
            "cpu_quota": hc.get("CpuQuota") or 0, "cpu_period": hc.get("CpuPeriod") or 0,
            "pids_limit": 0 if pids is None else (pids if pids > 0 else -1), "cpuset_cpus": hc.get("CpusetCpus") or "",
            "device_rules": list(hc.get("DeviceCgroupRules") or []),
            "memory_swappiness": -1 if hc.get("MemorySwappiness") is None else hc["MemorySwappiness"]}


def _system_cpu_ns():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:8]
    return sum(int(x) for x in parts) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def _sample(manager, c):
    if not c.running:
        return None
    try:
        s = manager.cgroup(c).stats()
    except OSError:
        return None
    return s


def parse_net_dev(text: str) -> dict:
    """``/proc/PID/net/dev`` → docker's per-interface ``networks`` stats (``lo`` left out, as dockerd does)."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        f = rest.split()
        if not sep or len(f) < 16 or name.strip() == "lo":
            continue
        n = [int(x) for x in f[:16]]
        out[name.strip()] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                             "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def _networks(c):
    # the container's netns seen through its init's /proc entry: no setns, no helper process
    if not c.running or (c.host_config.get("NetworkMode") or "") == "host":
        return {}
    try:
        with open("/proc/%d/net/dev" % int(c.state.get("Pid") or 0)) as f:
            return parse_net_dev(f.read())
    except (OSError, ValueError):
        return {}


def _stats_json(c, cur, pre, read_at, pre_at, sys_cur, sys_pre):
    ncpu = os.cpu_count() or 1

    def cpu(s, sysns):
        c = (s or {}).get("cpu") or {}
        th = c.get("throttling") or {}
        d = {"cpu_usage": {"total_usage": int(c.get("total_ns", 0)),
                           "usage_in_kernelmode": int(c.get("system_ns", 0)),
                           "usage_in_usermode": int(c.get("user_ns", 0))},
             "throttling_data": {"periods": int(th.get("periods", 0)),
                                 "throttled_periods": int(th.get("throttled_periods", 0)),
                                 "throttled_time": int(th.get("throttled_ns", 0))}}
        if s:
            d["system_cpu_usage"] = sysns
            d["online_cpus"] = ncpu
        if c.get("percpu_ns"):
            d["cpu_usage"]["percpu_usage"] = [int(x) for x in c["percpu_ns"]]
        return d

    mem, pids = {}, {}
    if cur:
        m = cur.get("memory") or {}
        limit = int(m.get("limit", 0))
        if not limit or limit >= 1 << 62:
            try:
                with open("/proc/meminfo") as f:
                    limit = int(f.readline().split()[1]) * 1024
            except OSError:
                limit = 0
        mem = {"usage": int(m.get("usage", 0)), "limit": limit,
               "stats": {k: int(v) for k, v in (m.get("stats") or {}).items() if str(v).isdigit()}}
        pids = {"current": int((cur.get("pids") or {}).get("current", 0))}
        plim = c.host_config.get("PidsLimit") or 0
        if plim > 0:
            pids["limit"] = plim
    out = {"read": read_at, "preread": pre_at, "pids_stats": pids, "blkio_stats": {
                "io_service_bytes_recursive": None, "io_serviced_recursive": None, "io_queue_recursive": None,
                "io_service_time_recursive": None, "io_wait_time_recursive": None, "io_merged_recursive": None,
                "io_time_recursive": None, "sectors_recursive": None},
            "num_procs": 0, "storage_stats": {}, "cpu_stats": cpu(cur, sys_cur),
            "precpu_stats": cpu(pre, sys_pre), "memory_stats": mem, "name": "/" + c.name, "id": c.id}
    nets = _networks(c) if cur else {}
    if nets:  # dockerd leaves the key out for a container with no interface but lo
        out["networks"] = nets
    return out


def stats(manager, c, stream=True, one_shot=False, stop=lambda: False, interval=1.0):
    """Yield docker's stats JSON: once (with a previous sample ~0.5 s before, or none with
    ``one_shot``), or every ``interval`` seconds while ``stream`` and the container runs."""
    pre, pre_at, sys_pre = None, ZERO_TIME, 0
    if not stream and not one_shot:
        pre, pre_at, sys_pre = _sample(manager, c), now_rfc3339(), _system_cpu_ns()
        time.sleep(0.5)
    while True:
        cur, at, sysns = _sample(manager, c), now_rfc3339(), _system_cpu_ns()
        yield _stats_json(c, cur, pre, at, pre_at, sysns, sys_pre)
        if not stream or stop() or not c.running:
            return
        pre, pre_at, sys_pre = cur, at, sysns
        end = time.monotonic() + interval
        while time.monotonic() < end:
            if stop():
                return
            time.sleep(0.1)


def top(manager, c, ps_args="", hide=()):
    """docker top: the host's ``ps`` output limited to the container's processes.

    Args:
        hide: pids in the cgroup that are not the container's (its exec helpers).
    """
    if not c.running:
        raise Conflict("Container %s is not running" % c.id)
    pids = set(manager.cgroup(c).pids()) - set(hide)
    args = ps_args.split() if ps_args else ["-ef"]
    r = subprocess.run(["ps"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise InvalidParameter("ps: %s" % (r.stderr.strip() or "failed"))
    lines = r.stdout.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidParameter("Couldn't find PID field in ps output")
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) < len(titles):
            continue
        try:
            if int(fields[pid_col]) in pids:
                procs.append(fields)
        except ValueError:
            continue
    return {"Titles": titles, "Processes": procs}


def pause(manager, c):
    with c.lock:
        if not c.running:
            raise Conflict("Container %s is not running" % c.id)
        if c.state.get("Paused"):
            raise Conflict("Container %s is already paused" % c.id)
        manager.cgroup(c).freeze()
        c.state.update(Paused=True, Status="paused")
        if manager.health is not None:
            manager.health.sync(c)  # docker does not probe a paused container
        manager.store.save(c)
    manager._emit(c, "pause")


def unpause(manager, c):
    with c.lock:
        if not c.state.get("Paused"):
            raise Conflict("Container %s is not paused" % c.id)
        manager.cgroup(c).thaw()
        c.state.update(Paused=False, Status="running")
        if manager.health is not None:
            manager.health.sync(c)
        manager.store.save(c)
    manager._emit(c, "unpause")


@contextlib.contextmanager
def frozen(manager, c, pause=True):
    """Freeze ``c``'s cgroup for the block when it runs and ``pause`` (docker commit's default),
    so that nothing in it changes its files while they are read; a user's ``docker pause``
    meanwhile is kept (the cgroup stays frozen), their ``unpause`` is refused as not paused.
    No pause/unpause event: the container's state does not change."""
    with c.lock:
        freeze = bool(pause and c.running and not c.state.get("Paused"))
        if freeze:
            manager.cgroup(c).freeze()
    try:
        yield
    finally:
        if freeze:
            with c.lock:
                if c.running and not c.state.get("Paused"):
                    manager.cgroup(c).thaw()


_UPDATABLE = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
              "PidsLimit", "CpusetCpus", "RestartPolicy")


def _changes(body: dict) -> dict:
    """The fields an update request changes, by dockerd's rule: the CLI sends every resource,
    and zero (empty, no restart policy name) means "leave as it is"; only PidsLimit is a
    pointer there, so that 0 or -1 can lift the limit."""
    out = {}
    for k in _UPDATABLE:
        v = body.get(k)
        if k == "PidsLimit" and v is not None:
            out[k] = max(v, 0)  # dockerd records 0 (unlimited) for 0 or less
        elif k == "RestartPolicy" and isinstance(v, dict) and v.get("Name"):
            out[k] = v
        elif k not in ("PidsLimit", "RestartPolicy") and v:
            out[k] = v
    return out


def _check_cpu_update(cid: str, old: dict, new: dict) -> None:
    """--cpus and --cpu-quota/--cpu-period set the same limit: dockerd refuses to switch by update."""
    for field, flag in (("CpuPeriod", "CPU Period"), ("CpuQuota", "CPU Quota")):
        if (new.get("NanoCpus") or 0) > 0 and (old.get(field) or 0) > 0 \
                or (new.get(field) or 0) > 0 and (old.get("NanoCpus") or 0) > 0:
            raise InvalidParameter("Cannot update container %s: Conflicting options: %s cannot be updated as "
                                   "NanoCPUs has already been set" % (cid, flag))


def update(manager, c, body):
    """docker update: change the resources (and restart policy) of a container, live if it runs.

    Raises:
        InvalidParameter: an unsupported field, a bad value, or a conflict with what is set.
        Unavailable: the kernel refused a limit (the record is then left unchanged).
    """
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: an object is required")
    for k in body:
        if k not in _UPDATABLE and body[k] not in (None, 0, "", [], {}):
            raise InvalidParameter("updating %s is not supported" % k)
    changes = _changes(body)
    with c.lock:
        _check_cpu_update(c.id, c.host_config, changes)
        hc = dict(c.host_config)
        hc.update(changes)
        if changes.get("Memory") and not changes.get("MemorySwap") and c.host_config.get("MemorySwap", 0) not in (0, -1):
            if hc["Memory"] > hc["MemorySwap"]:
                raise InvalidParameter("Cannot update container %s: Memory limit should be smaller than already "
                                       "set memoryswap limit, update the memoryswap at the same time" % c.id)
        validate_host_config(hc, update=True)
        if c.running:
            manager.cgroup(c).update(cgroup_limits(hc))
        c.data["HostConfig"] = hc
        manager.store.save(c)
    manager._emit(c, "update")
    return {"Warnings": []}
