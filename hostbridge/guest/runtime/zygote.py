"""A pre-started, single-threaded process that forks shims on the engine's behalf.

Starting a shim by exec costs a Python interpreter start and the runtime's imports (tens of
milliseconds idle, far more on a loaded host) on every container start. The zygote pays that
once: the engine execs it at start-up (never a fork of the threaded engine), and for each
container sends it one socket over which the new shim reports, as ``shim.main`` would print,
``{"pid": N}`` or ``{"error": "…"}``. Forking here is safe: the zygote has a single thread.

The zygote reads requests on its stdin (a socketpair end held by the engine) and exits when
the engine closes it or dies. An idle engine closes it after ``IDLE_SECONDS`` (it is a cache
for start-up latency, not worth its ~14 MB while nothing starts) and starts it again when a
container is created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time

from .. import selfexec

IDLE_SECONDS = 120


PARK_SECONDS = 10  # how long a prepared exec helper waits for its start before giving up


def serve(ctl: socket.socket) -> None:
    """Fork one shim (or exec helper) per request until ``ctl`` closes.

    A request is one SOCK_SEQPACKET message: JSON ``{"op": "shim", "bundle": DIR}`` with the report
    socket, or ``{"op": "exec", "spec": {…}}`` with the exec's control socket (``_exec``)."""
    import traceback  # here too: a helper cannot import once it is in a container's mount namespace

    from . import caps, execproc, seccomp, shim  # pay the imports here, once
    # The kernel reaps the zygote's children, so it never waits on one (exec helpers live as
    # long as their process). Each child restores the default before it forks and waits itself.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 4, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            return
        if not msg:
            return
        try:
            req = json.loads(msg)
        except ValueError:
            req = {}
        if not fds or req.get("op") not in ("shim", "exec"):
            for fd in fds:
                os.close(fd)
            continue
        # docker's filter for the default capabilities, compiled once (at the first request, not
        # at start-up: an engine stopped right after its start would wait for it) and inherited
        seccomp.warm(caps.DEFAULT)
        if os.fork() == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                ctl.close()
                os.setsid()
                if req["op"] == "shim":
                    if os.fork():  # the shim must not be a session leader: it opens terminals
                        os._exit(0)
                    shim._daemon(req["bundle"], fds[0])
                else:
                    _exec(execproc, req["spec"], fds[0])
            except BaseException:
                traceback.print_exc()
            os._exit(0)
        for fd in fds:
            os.close(fd)


def _exec(execproc, spec, control_fd) -> None:
    """The exec helper, forked at the exec's create: enter the container now, so that the start
    does not wait for it (a ``cgroup.procs`` move can cost an RCU grace period, 5-15 ms); then
    wait on ``control_fd`` for the start — one message carrying the process's stdin, stdout
    and stderr. It reports JSON lines there: ``{"pid"}`` at once, ``{"started"}``
    when the start came, ``{"child"}`` (the process's pid) and ``{"exit_code"}``. EOF or
    ``PARK_SECONDS`` without a start ends the helper."""
    control = socket.socket(fileno=control_fd)
    control.sendall((json.dumps({"pid": os.getpid()}) + "\n").encode())
    error, entered = execproc.enter(spec)
    control.settimeout(PARK_SECONDS)
    try:
        msg, stdio, _, _ = socket.recv_fds(control, 64, 3, socket.MSG_CMSG_CLOEXEC)
    except OSError:
        os._exit(0)
    if not msg or len(stdio) != 3:
        os._exit(0)
    control.settimeout(None)
    for i, fd in enumerate(stdio):
        os.dup2(fd, i)
    for fd in stdio:
        if fd > 2:
            os.close(fd)
    control.sendall(b'{"started": true}\n')
    if error:
        sys.stderr.write(error + "\n")
        code = 126
    else:
        code = execproc.run(spec, entered,
                            lambda pid: control.sendall((json.dumps({"child": pid}) + "\n").encode()))
    try:
        sys.stderr.flush()
    except OSError:
        pass
    control.sendall((json.dumps({"exit_code": code}) + "\n").encode())
    os._exit(code & 0xFF)


def main(argv) -> int:
    os.chdir("/")
    ctl = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    serve(ctl)
    return 0


class Zygote:
    """The engine's handle: ``spawn(bundle)`` returns the shim's report line (bytes)."""

    def __init__(self, idle_seconds=IDLE_SECONDS):
        self._lock = threading.Lock()
        self._proc = None
        self._ctl = None
        self._last = time.monotonic()
        self._idle_seconds = idle_seconds
        self._reaper = None
        self._closed = threading.Event()

    def _ensure(self):
        self._last = time.monotonic()
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        import subprocess
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one message a request
        self._proc = subprocess.Popen(selfexec.argv("zygote"), stdin=theirs, env=selfexec.env(),
                                      close_fds=True, start_new_session=True)
        theirs.close()
        self._ctl = mine
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._close_when_idle, name="zygote-idle", daemon=True)
            self._reaper.start()

    def _close_when_idle(self):
        while not self._closed.wait(min(10.0, self._idle_seconds)):
            with self._lock:
                if self._ctl is not None and time.monotonic() - self._last > self._idle_seconds:
                    # requests already sent are still served: the zygote reads them before EOF
                    self._ctl.close()
                    self._ctl = None
                    try:
                        self._proc.wait(5)
                    except Exception:
                        pass

    def prestart(self) -> None:
        """Start the zygote now (at engine start, at container create), so that the container's
        start does not wait for it."""
        with self._lock:
            self._ensure()

    def spawn(self, bundle: str, timeout: float) -> bytes:
        """Have the zygote create the container of ``bundle``; its JSON report (may be empty)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                self._ensure()
                socket.send_fds(self._ctl, [json.dumps({"op": "shim", "bundle": bundle}).encode()], [theirs.fileno()])
            theirs.close()
            mine.settimeout(timeout)
            chunks = []
            while True:
                b = mine.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        finally:
            mine.close()
            try:
                theirs.close()
            except OSError:
                pass

    def prepare_exec(self, spec: dict) -> "PendingExec":
        """Fork an exec helper (``runtime/execproc.py``) that enters the container now and runs
        the process when ``start`` gives it its stdio.

        Raises:
            OSError: no zygote could be reached (the caller execs a helper instead).
        """
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                self._ensure()
                socket.send_fds(self._ctl, [json.dumps({"op": "exec", "spec": spec}).encode()], [theirs.fileno()])
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        return PendingExec(mine)

    def exec(self, spec: dict, stdin: int, stdout: int, stderr: int) -> "ExecHelper":
        """``prepare_exec(spec).start(stdin, stdout, stderr)``."""
        return self.prepare_exec(spec).start(stdin, stdout, stderr)

    def close(self):
        self._closed.set()
        with self._lock:
            if self._ctl is not None:
                self._ctl.close()
                self._ctl = None
            if self._proc is not None:
                try:
                    self._proc.wait(5)
                except Exception:
                    self._proc.kill()
                self._proc = None


class PendingExec:
    """An exec helper inside the container, waiting for its start (at most ``PARK_SECONDS``)."""

    def __init__(self, control: socket.socket):
        self.helper = ExecHelper(control)
        self._started = False
        self.created = time.monotonic()

    @property
    def pid(self):
        """The helper's pid (None if it is gone)."""
        return self.helper.pid

    def start(self, stdin: int, stdout: int, stderr: int) -> "ExecHelper":
        """Run the process with these stdio fds (the caller keeps and closes its copies).

        Raises:
            OSError: the helper is gone (it gave up waiting, or the container ended).
        """
        if self._started:
            raise OSError("exec helper already started")
        self._started = True
        try:
            socket.send_fds(self.helper.sock, [b"start"], [stdin, stdout, stderr])
            if not self.helper.get("started"):
                raise OSError("the exec helper did not start")
            # started means running, as with runc: the process's pid (or its failure) is known
            self.helper.get_first(("child", "exit_code"))
        except OSError:
            self.helper.close()
            raise
        return self.helper

    def cancel(self) -> None:
        """Let the helper go (it exits when it sees the control socket close)."""
        if not self._started:
            self._started = True
            self.helper.close()


class ExecHelper:
    """An exec helper forked by the zygote, read from its control socket: ``pid`` and ``wait()``
    as a Popen has them, and ``get(key)`` for the other lines of its report."""

    def __init__(self, control: socket.socket):
        self.sock = control
        self._report = control.makefile("rb")
        self._seen = {}
        self._lock = threading.Lock()
        self.returncode = None

    @property
    def pid(self):
        return self.get("pid")

    def get(self, key):
        """The value of ``key`` in the report, waiting for its line; None if it never comes."""
        return self.get_first((key,))

    def get_first(self, keys):
        """The value of the first of ``keys`` the report has, waiting for it; None if none comes."""
        for key in keys:
            if key in self._seen:  # without the lock: wait() holds it while the process runs
                return self._seen[key]
        with self._lock:
            while not any(key in self._seen for key in keys):
                try:
                    line = self._report.readline()
                except (OSError, ValueError):  # closed
                    line = b""
                if not line:
                    return None
                try:
                    self._seen.update(json.loads(line))
                except ValueError:
                    pass
            return next(self._seen[key] for key in keys if key in self._seen)

    def known(self, key):
        """The value of ``key`` if its line was read already (never waits)."""
        return self._seen.get(key)

    def wait(self) -> int:
        if self.returncode is None:
            code = self.get("exit_code")
            # no exit code: the helper died without reporting (killed): docker's 137 is the best guess
            self.returncode = 137 if code is None else code
            self.close()
        return self.returncode

    def close(self) -> None:
        for f in (self._report, self.sock):
            try:
                f.close()
            except OSError:
                pass


_instance = None
_instance_lock = threading.Lock()


def instance() -> Zygote:
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = Zygote()
        return _instance


def warm() -> None:
    """Have the zygote up before it is needed (at container or exec create): it is let go when
    idle, and a start that had to wait for it would pay an interpreter start after all."""
    try:
        instance().prestart()
    except OSError:
        pass  # spawn/exec fall back to exec'ing the shim or helper
