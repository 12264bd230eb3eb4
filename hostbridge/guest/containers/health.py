"""Health checks: run a container's ``Healthcheck`` probe as dockerd does (moby's daemon/health.go).

One scheduler thread serves every container: it starts each probe when it is due (an exec in
the container, started by ``ExecManager.start_probe``), reads the probes' output and waits for
their exit through one selector (a pidfd per probe where the kernel has them), kills a probe at
its timeout, and records the result in ``State.Health``. The manager tells it what changed:
``reset(c)`` when a container starts (or is found running after an engine restart), ``sync(c)``
when it stops, pauses, unpauses or goes; both are called with ``c.lock`` held.

docker's rules: the first probe runs an interval after the start; the next an interval after
the previous one ended (inside ``StartPeriod``: what is left of it when that is shorter than
``Interval``, else ``StartInterval`` while still starting); exit 0 is healthy, anything else a
failure that counts towards
``Retries`` unless the container never was healthy and the probe started inside
``StartPeriod``; the output keeps 4096 bytes (``...`` marks a cut), the log the last 5 results;
a stopped or paused container is ``unhealthy`` and is not probed.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import threading
import time

from ..durations import format_duration
from ..errors import GuestError
from ..util import now_rfc3339, parse_time

log = logging.getLogger("hostbridge.health")

SECOND = 10 ** 9
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096
MAX_LOG = 5
_KILL_GRACE = 10.0  # seconds a killed probe gets to exit before it is given up on
_POLL = 0.1  # exit polling step where pidfds are missing (Linux < 5.3)

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NONE)


def probe_argv(config):
    """The argv of a container's health probe, or None when it has none.

    ``["CMD", a, …]`` runs ``[a, …]``; ``["CMD-SHELL", s]`` runs the container's ``Shell``
    (``/bin/sh -c`` by default) with ``s``; ``["NONE"]``, no Healthcheck or no command: None.
    """
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    if test[0] == "CMD":
        return list(test[1:])
    return list(config.get("Shell") or ["/bin/sh", "-c"]) + list(test[1:])


def health_status(state):
    """The ``health`` filter's value of a container state: its Health.Status, or ``none``."""
    h = state.get("Health")
    if h is None:
        return NONE
    return h.get("Status") or UNHEALTHY  # docker: no status yet reads as unhealthy


def _setting(config, key, default):
    return (config.get("Healthcheck") or {}).get(key) or default


class _Monitor:
    """A container being probed: when its next probe is due, and the probe running."""

    def __init__(self, c, due):
        self.c = c
        self.due = due
        self.probe = None
        self.cancelled = False


class _Probe:
    """One probe run: its exec, output pipe, exit notification and deadline."""

    def __init__(self, monitor, exec_, out_fd, start, deadline, timeout_ns):
        self.monitor = monitor
        self.exec = exec_
        self.out_fd = out_fd
        self.start = start
        self.deadline = deadline
        self.timeout_ns = timeout_ns
        self.output = bytearray()
        self.truncated = False
        self.exit_fd = None
        self.exited = False
        self.killed_at = None
        self.timed_out = False

    def take(self, data):
        keep = MAX_OUTPUT - len(self.output)
        if keep > 0:
            self.output += data[:keep]
        if len(data) > max(keep, 0):
            self.truncated = True

    def text(self):
        out = self.output.decode("utf-8", "replace")
        return out + "..." if self.truncated else out


class HealthChecks:
    """The engine's health-check scheduler (one thread, started on the first monitored container).

    Args:
        manager: the ContainerManager (its store, ``_emit`` for events).
        execs: the ExecManager that starts the probes.
    """

    def __init__(self, manager, execs):
        self.manager = manager
        self.execs = execs
        self._lock = threading.Lock()
        self._monitors = {}  # container id -> _Monitor
        self._probes = set()  # running probes, including those of cancelled monitors (thread only)
        self._closed = False
        self._thread = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)

    # ---- what the manager calls, with c.lock held ----------------------------------------
    def reset(self, c):
        """A container (re)started or was found running: status ``starting``, streak 0, probing
        (unless paused); the log is kept. Nothing happens without a probe."""
        if probe_argv(c.config) is None:
            return
        self._cancel(c)
        h = c.state.get("Health") or {}
        c.state["Health"] = {"Status": STARTING, "FailingStreak": 0, "Log": list(h.get("Log") or [])}
        self.sync(c)

    def sync(self, c):
        """Probe ``c`` while it runs unpaused, else stop (status ``unhealthy``, as docker)."""
        want = (c.running and not c.state.get("Paused") and not c.removed
                and c.state.get("Health") is not None and probe_argv(c.config) is not None)
        if not want:
            if self._cancel(c) and c.state.get("Health") is not None:
                c.state["Health"]["Status"] = UNHEALTHY
            return
        with self._lock:
            if self._closed or c.id in self._monitors:
                return
            self._monitors[c.id] = _Monitor(c, time.monotonic() + self._interval(c) / SECOND)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="health", daemon=True)
                self._thread.start()
        self._wake()

    def _cancel(self, c):
        with self._lock:
            m = self._monitors.pop(c.id, None)
            if m is None:
                return False
            m.cancelled = True
        self._wake()  # the thread kills its probe, if one runs
        return True

    def close(self):
        """Stop the thread and kill the probes still running (the engine is going down)."""
        with self._lock:
            self._closed = True
            self._monitors.clear()
            t = self._thread
        self._wake()
        if t is not None:
            t.join(5)
        if t is None or not t.is_alive():
            for p in list(self._probes):
                self._kill(p)
                self._release(p)
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full: the thread is awake anyway (or closed)

    # ---- timing -----------------------------------------------------------------------------
    def _interval(self, c):
        """Nanoseconds until the next probe (moby's getInterval), with c.lock held."""
        interval = _setting(c.config, "Interval", DEFAULT_INTERVAL)
        start_period = _setting(c.config, "StartPeriod", 0)
        elapsed = int((time.time() - parse_time(c.state["StartedAt"]).timestamp()) * SECOND)
        if elapsed >= start_period:
            return interval
        remaining = start_period - elapsed
        if remaining < interval:
            return remaining
        if (c.state.get("Health") or {}).get("Status") == STARTING:
            return _setting(c.config, "StartInterval", DEFAULT_START_INTERVAL)
        return interval

    # ---- the scheduler thread ---------------------------------------------------------------
    def _run(self):
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                monitors = list(self._monitors.values())
            try:
                for m in monitors:
                    if m.probe is None and m.due <= now:
                        m.due = now + 1.0  # a probe that fails to start is not retried at once
                        self._start(m)
                for p in list(self._probes):
                    self._check(p)
                self._sel_wait(monitors)
            except Exception:  # one bad probe must not end every container's health checks
                log.exception("health checks")
                time.sleep(0.5)

    def _sel_wait(self, monitors):
        now = time.monotonic()
        waits = [m.due - now for m in monitors if m.probe is None]
        for p in self._probes:
            waits.append((p.killed_at + _KILL_GRACE if p.killed_at else p.deadline) - now)
            if p.exit_fd is None:
                waits.append(_POLL)
        timeout = max(0.0, min(waits)) if waits else None
        for key, _ in self._sel.select(timeout):
            if key.data is None:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except OSError:
                    pass
            else:
                kind, p = key.data
                if kind == "out":
                    self._read(p)
                else:
                    p.exited = True

    def _start(self, m):
        c = m.c
        with c.lock:
            argv = probe_argv(c.config)
            if m.cancelled or argv is None:
                return
            timeout_ns = _setting(c.config, "Timeout", DEFAULT_TIMEOUT)
        start = now_rfc3339()
        try:
            e, out_fd = self.execs.start_probe(c, argv)
        except (GuestError, OSError) as err:
            self._record(m, {"Start": start, "End": now_rfc3339(), "ExitCode": -1, "Output": str(err)})
            return
        p = _Probe(m, e, out_fd, start, time.monotonic() + timeout_ns / SECOND, timeout_ns)
        m.probe = p
        self._probes.add(p)
        self._sel.register(out_fd, selectors.EVENT_READ, ("out", p))
        try:
            p.exit_fd = os.pidfd_open(e.proc.pid)
            self._sel.register(p.exit_fd, selectors.EVENT_READ, ("exit", p))
        except ProcessLookupError:
            p.exited = True
        except (AttributeError, OSError):
            p.exit_fd = None  # no pidfds here: _check polls

    def _read(self, p):
        try:
            data = os.read(p.out_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            p.take(data)
        else:
            self._sel.unregister(p.out_fd)
            os.close(p.out_fd)
            p.out_fd = None

    def _check(self, p):
        if not p.exited and p.exit_fd is None:
            p.exited = _gone(p.exec.proc)
        now = time.monotonic()
        if not p.exited:
            if p.killed_at is None and (p.monitor.cancelled or now >= p.deadline):
                p.timed_out = not p.monitor.cancelled
                self._kill(p)
                p.killed_at = now
            elif p.killed_at is not None and now >= p.killed_at + _KILL_GRACE:
                log.warning("health probe %s in %s did not die: given up", p.exec.id, p.monitor.c.id[:12])
                self._release(p)
                self._done(p, None)
            return
        for _ in range(16):  # what the probe wrote before it exited (bounded: a child it left
            if p.out_fd is None:  # behind may hold the pipe and keep writing)
                break
            before = len(p.output), p.truncated
            self._read(p)
            if p.out_fd is not None and (len(p.output), p.truncated) == before:
                break
        self._release(p)
        code = self.execs.finish(p.exec)
        self._done(p, code)

    def _done(self, p, code):
        if p.timed_out or code is None:
            msg = "Health check exceeded timeout (%s)" % format_duration(p.timeout_ns)
            out = p.text()
            code, output = -1, (msg + ": " + out if out else msg)
        else:
            output = p.text()
        p.monitor.probe = None
        if not p.monitor.cancelled:
            self._record(p.monitor, {"Start": p.start, "End": now_rfc3339(), "ExitCode": code, "Output": output})

    def _release(self, p):
        self._probes.discard(p)
        for fd in (p.out_fd, p.exit_fd):
            if fd is not None:
                try:
                    self._sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                os.close(fd)
        p.out_fd = p.exit_fd = None

    def _kill(self, p):
        """SIGKILL the probe's process (the helper's child, in the container), as dockerd does on
        a timeout; the helper itself when its child is not there (yet)."""
        pid = p.exec.proc.pid
        kids = _children(pid)
        for k in kids:
            _signal(k, signal.SIGKILL)
        if not kids:
            _signal(pid, signal.SIGKILL)

    # ---- results ------------------------------------------------------------------------------
    def _record(self, m, result):
        """Record a probe's result in the container's Health; an event when the status changed."""
        c = m.c
        with c.lock:
            with self._lock:
                if m.cancelled or self._monitors.get(c.id) is not m:
                    return
            h = c.state.get("Health")
            changed = h is not None and apply_result(h, result, c.config, c.state["StartedAt"])
            m.due = time.monotonic() + self._interval(c) / SECOND
            if changed:
                status = h["Status"]
                self.manager.store.save(c)  # the log reaches the disk on changes only, as dockerd's
        if changed:
            self.manager._emit(c, "health_status: " + status)


def apply_result(health, result, config, started_at):
    """moby's handleProbeResult: add ``result`` to ``health`` (State.Health, changed in place):
    the log, the failing streak, the status. Returns True when the status changed.

    Args:
        health: ``{"Status", "FailingStreak", "Log"}``.
        result: ``{"Start", "End", "ExitCode", "Output"}`` (times RFC 3339).
        config: the container's Config (its Healthcheck's Retries and StartPeriod).
        started_at: the container's State.StartedAt (RFC 3339).
    """
    old = health.get("Status") or UNHEALTHY
    health["Log"] = (list(health.get("Log") or []) + [result])[-MAX_LOG:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
        return old != HEALTHY
    if old == STARTING:
        # failures of a container that never was healthy do not count inside its start period
        since = parse_time(result["Start"]).timestamp() - parse_time(started_at).timestamp()
        if since * SECOND < _setting(config, "StartPeriod", 0):
            return False
    health["FailingStreak"] = health.get("FailingStreak", 0) + 1
    if health["FailingStreak"] >= _setting(config, "Retries", DEFAULT_RETRIES):
        health["Status"] = UNHEALTHY
    return health["Status"] != old


def _children(pid):
    """The children of ``pid`` (the kernel's list; a /proc scan where that file is missing)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        pass
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno != errno.ESRCH:
            log.warning("cannot signal health probe %d: %s", pid, e)


def _gone(proc):
    """Has a probe's helper exited? (where pidfds are missing)"""
    poll = getattr(proc, "poll", None)
    if poll is not None:
        return poll() is not None
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True
