"""``docker exec``: processes started inside a running container by the runtime's exec helper."""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import struct
import subprocess
import threading
import time

from . import detach
from .. import selfexec
from .config import seccomp_spec
from ..errors import Conflict, InvalidParameter, NotFound
from ..runtime import zygote
from ..util import new_id

log = logging.getLogger("hostbridge.exec")


class Exec:
    def __init__(self, eid, container, cfg):
        self.id = eid
        self.container = container
        self.cfg = cfg
        self.running = False
        self.started = False
        self.exit_code = None
        self.pid = 0
        self.master = None
        self.proc = None
        self.done = threading.Event()
        self.spec = None  # the helper's spec, as of the create
        self.pending = None  # its zygote.PendingExec: a helper already inside the container

    def inspect(self):
        cfg = self.cfg
        argv = cfg.get("Cmd") or []
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": bool(cfg.get("Tty")), "entrypoint": argv[0] if argv else "",
                                  "arguments": argv[1:], "privileged": bool(cfg.get("Privileged")),
                                  "user": cfg.get("User") or ""},
                "OpenStdin": bool(cfg.get("AttachStdin")), "OpenStderr": bool(cfg.get("AttachStderr")),
                "OpenStdout": bool(cfg.get("AttachStdout")), "CanRemove": False,
                "ContainerID": self.container.id, "DetachKeys": self.detach_keys_shown(),
                "Pid": self.process_pid()}

    def detach_keys_shown(self):
        """dockerd shows the parsed keys, a Go []byte, so base64 ("" when none were given)."""
        given = self.cfg.get("DetachKeys")
        return base64.b64encode(detach.parse(given, "escape keys")).decode() if given else ""

    def process_pid(self):
        """The exec'd process's host pid as docker reports it (its helper's until it is known)."""
        known = getattr(self.proc, "known", None)
        return (known("child") if known else None) or self.pid


class ExecManager:
    def __init__(self, containers, events):
        self.containers = containers
        self.events = events
        self._execs = {}
        self._lock = threading.Lock()

    def create(self, ref, cfg):
        c = self.containers.get(ref)
        if not isinstance(cfg, dict):
            raise InvalidParameter("invalid JSON body: an object is required")
        cmd = cfg.get("Cmd")
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidParameter("No exec command specified")
        detach.parse(cfg.get("DetachKeys"), "escape keys")  # dockerd refuses a bad one at create
        with c.lock:
            if not c.running:
                raise Conflict("Container %s is not running" % c.id)
            if c.state.get("Paused"):
                raise Conflict("Container %s is paused, unpause the container before exec" % c.id)
            e = Exec(new_id(), c, cfg)
            e.spec = self._spec(e)
            with self._lock:
                self._execs[e.id] = e
                stale = [x for x in self._execs.values() if x.pending is not None
                         and time.monotonic() - x.pending.created > zygote.PARK_SECONDS]
                for x in stale:
                    stale_pending, x.pending = x.pending, None
                    stale_pending.cancel()  # never started: its helper has given up already
            c.execs.add(e.id)
        try:
            # The helper enters the container now, while the client sends the start.
            e.pending = zygote.instance().prepare_exec(e.spec)
        except OSError:
            pass  # the start execs a helper
        self._emit(e, "exec_create: " + " ".join(cmd))
        return {"Id": e.id}

    def helper_pids(self, c) -> set:
        """The pids of ``c``'s exec helpers (parked or running): runtime processes in its
        cgroups that ``top`` leaves out, as runc leaves none behind."""
        with self._lock:
            execs = [self._execs.get(eid) for eid in list(c.execs)]
        out = set()
        for e in execs:
            if e is None:
                continue
            if e.proc is not None and e.running:
                out.add(e.proc.pid)
            if e.pending is not None and e.pending.pid:
                out.add(e.pending.pid)
        return out

    def get(self, eid):
        with self._lock:
            e = self._execs.get(eid)
        if e is None:
            raise NotFound("No such exec instance: %s" % eid)
        return e

    def _spec(self, e):
        c, cfg = e.container, e.cfg
        env = list(c.config.get("Env") or [])
        keys = {x.split("=", 1)[0]: i for i, x in enumerate(env)}
        for x in cfg.get("Env") or []:
            k = x.split("=", 1)[0]
            if k in keys:
                env[keys[k]] = x
            else:
                env.append(x)
        return {"pid": c.state["Pid"], "args": cfg["Cmd"], "env": env,
                "cwd": cfg.get("WorkingDir") or c.config.get("WorkingDir") or "/",
                "user": cfg.get("User") or c.config.get("User") or "", "tty": bool(cfg.get("Tty")),
                "group_add": list(c.host_config.get("GroupAdd") or []),
                "privileged": bool(cfg.get("Privileged")) or bool(c.host_config.get("Privileged")),
                "cap_add": list(c.host_config.get("CapAdd") or []),
                "cap_drop": list(c.host_config.get("CapDrop") or []),
                "no_new_privileges": True,
                "seccomp": seccomp_spec(c.host_config),  # the container's filter, as runc's exec
                # the exec'd process counts against the container's limits, shows in top/stats,
                # and freezes with it
                "cgroup_procs": self.containers.cgroup(c).procs_files()}

    def start(self, eid, console_size=None):
        """Start the exec's process (on a pty of ``console_size`` (h, w) when it has a TTY).

        Returns the Exec, with ``proc`` and, for a TTY, the pty ``master``."""
        e = self.get(eid)
        c = e.container
        with c.lock:
            if e.started:
                raise Conflict("Error: Exec command %s has already run" % eid)
            if not c.running:
                raise Conflict("Container %s is not running" % c.id)
            e.started = True
            spec = self._spec(e)
        with self._lock:
            pending, e.pending = e.pending, None
        if pending is not None and spec["pid"] != e.spec["pid"]:  # the container restarted since
            pending.cancel()
            pending = None
        tty = spec["tty"]
        if tty:
            import termios  # here and in resize: the terminal modules are a fair part of a start under emulation
            from ..runtime.ptys import open_pty_in
            try:
                master, slave, _ = open_pty_in(spec["pid"])  # in the container's devpts: `tty` names it
            except OSError:
                import pty
                master, slave = pty.openpty()
            e.master = master
            if console_size and len(console_size) == 2 and all(console_size):
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", int(console_size[0]),
                                                                    int(console_size[1]), 0, 0))
            try:
                proc = self._from_zygote(spec, pending, slave, slave, slave, None, None, None)
            except OSError:
                proc = subprocess.Popen(selfexec.argv("exec") + [json.dumps(spec)], stdin=slave, stdout=slave,
                                        stderr=slave, env=selfexec.env(), close_fds=True, start_new_session=True)
            os.close(slave)
        else:
            proc = self._start_piped(spec, pending, bool(e.cfg.get("AttachStdin")))
        e.proc = proc
        e.pid = proc.pid
        e.running = True
        self._emit(e, "exec_start: " + " ".join(e.cfg["Cmd"]))
        return e

    def start_probe(self, c, argv):
        """Start a health probe in running container ``c``, as dockerd runs one: ``argv`` with
        the container's user, working dir and environment, no TTY, no stdin, stdout and stderr
        on one pipe. The exec is hidden (not in the container's ExecIDs, not found by id) but
        has docker's ``exec_create``/``exec_start`` events; ``finish(e)`` gives ``exec_die``.

        Args:
            c: the container (a store.Container).
            argv: the probe's command line.

        Returns:
            ``(Exec, fd)``: ``Exec.proc`` has ``pid`` and ``wait()``; ``fd`` is the output pipe's
            read end, non-blocking, which the caller closes.

        Raises:
            Conflict: the container is not running, or is paused.
            OSError: no pipe or helper process could be made.
        """
        with c.lock:
            if not c.running:
                raise Conflict("Container %s is not running" % c.id)
            if c.state.get("Paused"):
                raise Conflict("Container %s is paused, unpause the container before exec" % c.id)
            e = Exec(new_id(), c, {"Cmd": list(argv), "AttachStdout": True, "AttachStderr": True})
            e.started = True
            spec = self._spec(e)
        self._emit(e, "exec_create: " + " ".join(argv))
        out_r, out_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            try:
                e.proc = zygote.instance().exec(spec, null, out_w, out_w)
            except OSError:
                e.proc = subprocess.Popen(selfexec.argv("exec") + [json.dumps(spec)], stdin=null, stdout=out_w,
                                          stderr=out_w, env=selfexec.env(), close_fds=True, start_new_session=True)
        except BaseException:
            os.close(out_r)
            raise
        finally:
            os.close(null)
            os.close(out_w)
        os.set_blocking(out_r, False)
        e.pid = e.proc.pid
        e.running = True
        self._emit(e, "exec_start: " + " ".join(argv))
        return e, out_r

    def _emit(self, e, action, **extra):
        c = e.container
        attrs = {"name": c.name, "image": c.config.get("Image", ""), "execID": e.id}
        attrs.update(extra)
        self.events.emit("container", action, c.id, attrs)

    def _from_zygote(self, spec, pending, stdin, stdout, stderr, stdin_w, stdout_r, stderr_r):
        helper = None
        if pending is not None:
            try:
                helper = pending.start(stdin, stdout, stderr)
            except OSError:
                pass  # it gave up waiting (PARK_SECONDS): a fresh one
        if helper is None:
            helper = zygote.instance().exec(spec, stdin, stdout, stderr)
        helper.stdin = os.fdopen(stdin_w, "wb", buffering=0) if stdin_w is not None else None
        helper.stdout = os.fdopen(stdout_r, "rb", buffering=0) if stdout_r is not None else None
        helper.stderr = os.fdopen(stderr_r, "rb", buffering=0) if stderr_r is not None else None
        return helper

    def _start_piped(self, spec, pending, attach_stdin):
        """A non-TTY exec's helper with pipes: forked by the zygote (no interpreter start), else
        a fresh one."""
        if attach_stdin:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            return self._from_zygote(spec, pending, in_r, out_w, err_w, in_w, out_r, err_r)
        except OSError:
            for fd in (in_w, out_r, err_r):
                if fd is not None:
                    os.close(fd)
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        return subprocess.Popen(selfexec.argv("exec") + [json.dumps(spec)],
                                stdin=subprocess.PIPE if attach_stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=selfexec.env(),
                                close_fds=True, start_new_session=True)

    def finish(self, e):
        code = e.proc.wait()
        if e.master is not None:
            try:
                os.close(e.master)
            except OSError:
                pass
            e.master = None
        e.exit_code = code if code >= 0 else 128 - code
        e.running = False
        e.done.set()
        self._emit(e, "exec_die", exitCode=str(e.exit_code))
        e.container.execs.discard(e.id)
        return e.exit_code

    def resize(self, eid, h, w):
        e = self.get(eid)
        if e.master is None:
            if not e.cfg.get("Tty"):
                raise InvalidParameter("exec %s has no TTY to resize" % eid)
            return
        import termios
        fcntl.ioctl(e.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
