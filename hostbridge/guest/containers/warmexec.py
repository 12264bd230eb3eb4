"""A warm exec helper: ``docker exec`` without waiting for a Python interpreter to start.

The runtime's exec helper (``selfexec.argv("exec")``) reads its spec from fd 3 when none is on
its command line, and it has imported everything it needs before it reads. So the engine keeps
one helper started ahead of time, blocked on that read, with pipes for its stdio; an exec with no
TTY takes it, writes the spec, and the process runs at once. A new one is started behind it.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from .. import selfexec

log = logging.getLogger("hostbridge.exec")


class HelperProcess:
    """The parts of ``subprocess.Popen`` the exec code uses, for a posix_spawn'ed helper."""

    def __init__(self, pid, stdin, stdout, stderr):
        self.pid = pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode = None

    def wait(self):
        """Wait for the helper; returns its exit status (negative: killed by that signal)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class WarmExec:
    """One helper kept waiting for a spec; ``take(spec)`` runs it, or returns None if none is ready.

    The caller calls ``refill`` (in a thread) once the exec it served is over: a new interpreter
    starting while the exec runs would only slow it down on a busy machine."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ready = None  # (HelperProcess, spec write fd)
        self._closed = False

    def _spawn(self):
        spec_r, spec_w = os.pipe()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (spec_w, in_w, out_r, err_r):
            os.set_inheritable(fd, False)
        try:
            # posix_spawn is safe in this threaded process and can put the spec pipe on fd 3
            pid = os.posix_spawn(selfexec.argv("exec")[0], selfexec.argv("exec"), selfexec.env(),
                                 file_actions=[(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                               (os.POSIX_SPAWN_DUP2, err_w, 2), (os.POSIX_SPAWN_DUP2, spec_r, 3)],
                                 setsid=True)
        except OSError:
            for fd in (spec_r, spec_w, in_r, in_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (spec_r, in_r, out_w, err_w):
            os.close(fd)
        proc = HelperProcess(pid, os.fdopen(in_w, "wb", buffering=0), os.fdopen(out_r, "rb", buffering=0),
                             os.fdopen(err_r, "rb", buffering=0))
        return proc, spec_w

    def refill(self):
        """Start a helper to wait for the next exec (no-op if one waits already)."""
        with self._lock:
            if self._ready is not None or self._closed:
                return
        try:
            ready = self._spawn()
        except OSError as e:
            log.warning("cannot start a warm exec helper: %s", e)
            return
        with self._lock:
            if self._ready is None and not self._closed:
                self._ready, ready = ready, None
        if ready is not None:  # raced with another refill, or closed: this one is not needed
            self._discard(ready)

    def take(self, spec: dict):
        """Run ``spec`` on the waiting helper; returns its HelperProcess, or None if none waits."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        proc, spec_w = ready
        try:
            os.write(spec_w, json.dumps(spec).encode())
        finally:
            os.close(spec_w)
        return proc

    def close(self):
        """Let the waiting helper go (it reads an empty spec and exits)."""
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, None
        if ready is not None:
            self._discard(ready)

    @staticmethod
    def _discard(ready):
        proc, spec_w = ready
        os.close(spec_w)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        threading.Thread(target=proc.wait, daemon=True).start()
