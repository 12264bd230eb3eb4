"""The shim's single-threaded event loop: one container's output, clients, exit.

It owns the container's stdio (pipes, or the pty master), writes the json-file log, relays
output to attach clients, feeds their input to stdin, answers the socket ops of
docs/internals.md, and on exit writes ``exit.json``, answers waiters, drains and closes
attach clients, removes the cgroup and leaves.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import termios
import time

from .. import util
from ..errors import RuntimeFailure
from . import logs, ns
from .container import exit_status

_READ = 65536
_CLIENT_GRACE = 30.0  # how long finished output may wait for a stuck client before we leave
_DRAIN_GRACE = 2.0  # after pid 1 exits, how long stray holders of the pipes may keep them open


class _Conn:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.mode = "request"  # then "attach", "waiting" (for start/exit), or "reply"
        self.streams = (False, False, False)  # stdin, stdout, stderr wanted by an attach
        self.read_open = True
        self.close_when_flushed = False


class Supervisor:
    """Supervises one created container; ``serve()`` runs until the shim should exit."""

    def __init__(self, bundle, config, cgroup, pid, listener, sync, stdio):
        self.bundle, self.config, self.cgroup, self.pid = bundle, config, cgroup, pid
        self.listener, self.sync = listener, sync
        proc = config.get("process") or {}
        self.tty = bool(proc.get("tty"))
        self.stdin_once = bool(proc.get("stdin_once"))
        self.open_stdin = bool(proc.get("open_stdin"))
        self.stdin_fd, out_r, err_r = stdio
        self.outputs = {} if self.tty else {out_r: logs.STDOUT, err_r: logs.STDERR}
        self.stdin_buf = b""
        self._stdin_close_pending = False
        self.status = "created"
        self.start_error = None
        self.start_waiters, self.waiters = [], []
        self.exit_record = None
        self.exit_status = None
        self.drain_deadline = None
        self.finished_at = None
        self.conns = {}
        self.sel = selectors.DefaultSelector()
        self._sync_buf = b""
        log_path = config.get("log_path")
        self.log = logs.JsonLogWriter(log_path, int(config.get("log_max_size") or 0),
                                      int(config.get("log_max_file") or 1)) if log_path else None

    # creation ---------------------------------------------------------------------------
    def wait_created(self) -> dict:
        """Block until the child reports ready (taking the pty master) or failure; returns its
        message (``{"ready": true}``, or ``{"userns": true}``: map my user namespace).

        Raises:
            RuntimeFailure: the child's error, or it died silently.
        """
        while b"\n" not in self._sync_buf:
            data, fds, _, _ = socket.recv_fds(self.sync, _READ, 4, socket.MSG_CMSG_CLOEXEC)
            for fd in fds:
                # the pty master: read as stdout; a dup of it is stdin, so each has its own
                # place in the selector
                self.outputs[fd] = logs.STDOUT
                self.stdin_fd = os.dup(fd)
            if not data:
                raise RuntimeFailure("container setup failed: the container process died")
            self._sync_buf += data
        line, _, self._sync_buf = self._sync_buf.partition(b"\n")
        msg = json.loads(line)
        if "error" in msg:
            raise RuntimeFailure(msg["error"])
        return msg

    def abort(self) -> None:
        """Kill and reap a half-created child."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    # loop -------------------------------------------------------------------------------
    def serve(self) -> None:
        """Run the event loop until the container has exited and every client is served."""
        sig_r, sig_w = os.pipe()
        for fd in (sig_r, sig_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(sig_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(sig_r, selectors.EVENT_READ, "signal")
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self.sync, selectors.EVENT_READ, "sync")
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "output")
        if self.stdin_fd is not None:
            os.set_blocking(self.stdin_fd, False)
        self._reap()
        while True:
            if self.exit_record is None and self.exit_status is not None and (
                    not self.outputs or time.monotonic() > self.drain_deadline):
                self._finish()
            if self.exit_record is not None and (
                    not self.conns or time.monotonic() - self.finished_at > _CLIENT_GRACE):
                break
            for key, events in self.sel.select(timeout=0.5):
                kind = key.data
                if kind == "signal":
                    try:
                        os.read(sig_r, 512)
                    except BlockingIOError:
                        pass
                    self._reap()
                elif kind == "accept":
                    self._accept()
                elif kind == "sync":
                    self._on_sync()
                elif kind == "output":
                    self._on_output(key.fd)
                elif kind == "stdin":
                    self._flush_stdin()
                else:
                    try:
                        self._on_conn(kind, events)
                    except Exception:
                        import traceback

                        traceback.print_exc()
                        self._drop(kind)
        self._leave()

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == self.pid and self.exit_status is None:
            self.exit_status = exit_status(status)
            self.drain_deadline = time.monotonic() + _DRAIN_GRACE

    # the container's side ---------------------------------------------------------------
    def _on_sync(self) -> None:
        try:
            data = self.sync.recv(_READ)
        except OSError:
            data = b""
        self._sync_buf += data
        while b"\n" in self._sync_buf:
            line, _, self._sync_buf = self._sync_buf.partition(b"\n")
            msg = json.loads(line)
            if "error" in msg:
                self.start_error = msg
        if not data:  # closed on exec (or death): the start outcome is known
            self.sel.unregister(self.sync)
            self.sync.close()
            self.sync = None
            if self.start_error is None and self.exit_status is None:
                self.status = "running"
            waiters, self.start_waiters = self.start_waiters, []
            for c in waiters:
                self._reply(c, self._start_reply())

    def _start_reply(self) -> dict:
        if self.start_error is not None:
            return {"error": self.start_error["error"], "exit_code": self.start_error.get("exit_code", 1)}
        if self.status == "created" and self.exit_status is not None:
            return {"error": "cannot start a container that has stopped", "exit_code": self.exit_status}
        return {"ok": True}

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: a pty whose every slave is closed
                raise
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            os.close(fd)
            return
        if self.log:
            self.log.write(stream, data)
        for c in list(self.conns.values()):
            if c.mode == "attach" and c.streams[stream]:
                self._send(c, data if self.tty else logs.frame(stream, data))

    def _flush_stdin(self) -> None:
        if self.stdin_fd is None:
            self.stdin_buf = b""
            return
        try:
            n = os.write(self.stdin_fd, self.stdin_buf)
            self.stdin_buf = self.stdin_buf[n:]
        except BlockingIOError:
            pass
        except OSError:
            self.stdin_buf = b""  # the reader is gone: drop input, as docker does
        self._stdin_interest()

    def _stdin_interest(self) -> None:
        if self.stdin_fd is None:
            return
        want = bool(self.stdin_buf)
        registered = self.stdin_fd in self.sel.get_map()
        if want and not registered:
            self.sel.register(self.stdin_fd, selectors.EVENT_WRITE, "stdin")
        elif not want and registered:
            self.sel.unregister(self.stdin_fd)
        if not want and self._stdin_close_pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        """End the container's input (the stdin pipe's write end)."""
        self._stdin_close_pending = False
        if self.stdin_fd is None or self.tty:
            return
        if self.stdin_fd in self.sel.get_map():
            self.sel.unregister(self.stdin_fd)
        os.close(self.stdin_fd)
        self.stdin_fd = None

    # clients ----------------------------------------------------------------------------
    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        c = _Conn(sock)
        self.conns[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)

    def _on_conn(self, c: _Conn, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush_conn(c)
        if events & selectors.EVENT_READ and c.sock.fileno() in self.conns:
            try:
                data = c.sock.recv(_READ)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = None
            if data is None:
                self._drop(c)
            elif not data:
                self._on_eof(c)
            elif c.mode == "attach":
                if c.streams[0] and self.open_stdin and self.exit_record is None:
                    self.stdin_buf += data
                    self._stdin_interest()
            elif c.mode == "request":
                c.inbuf += data
                if b"\n" in c.inbuf:
                    line, _, rest = c.inbuf.partition(b"\n")
                    c.inbuf = b""
                    try:
                        self._handle(c, json.loads(line))
                    except (ValueError, KeyError, TypeError) as e:
                        self._reply(c, {"error": "bad request: %s" % e})
                    if rest and c.mode == "attach" and c.streams[0] and self.open_stdin:
                        self.stdin_buf += rest  # stdin sent right behind the request
                        self._stdin_interest()

    def _on_eof(self, c: _Conn) -> None:
        c.read_open = False
        self._update_interest(c)
        if c.mode == "attach":
            # docker's rule: only a stdin_once container without a tty loses its stdin; a
            # client that merely detaches leaves it open for the next one
            if c.streams[0] and self.open_stdin and self.stdin_once and not self.tty:
                self._stdin_close_pending = True
                self._stdin_interest()  # closes once what the client sent is written
            if not any(c.streams[1:]) or self.exit_record is not None:
                self._close_after_flush(c)
        elif c.mode == "request" and not c.outbuf:
            self._drop(c)

    def _handle(self, c: _Conn, req: dict) -> None:
        op = req.get("op")
        if op == "state":
            status = "exited" if self.exit_record is not None or self.exit_status is not None else self.status
            self._reply(c, {"pid": self.pid, "status": status, "cgroup_paths": self.cgroup.paths})
        elif op == "wait":
            if self.exit_record is not None:
                self._reply(c, self.exit_record)
            else:
                c.mode = "waiting"
                self.waiters.append(c)
        elif op == "start":
            if self.sync is not None and self.status == "created":
                if c not in self.start_waiters:
                    self.start_waiters.append(c)
                c.mode = "waiting"
                if len(self.start_waiters) == 1:
                    self.sync.sendall(b"g")
            else:
                self._reply(c, self._start_reply())
        elif op == "attach":
            c.streams = (bool(req.get("stdin")), bool(req.get("stdout")), bool(req.get("stderr")))
            self._send(c, b'{"ok":true}\n')
            c.mode = "attach"
            if self.exit_record is not None:
                self._close_after_flush(c)
        elif op == "resize":
            fd = next(iter(self.outputs), None) if self.tty else None
            if fd is None:
                self._reply(c, {"error": "the container has no tty to resize"})
                return
            ws = struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0)
            fcntl.ioctl(fd, termios.TIOCSWINSZ, ws)
            self._reply(c, {"ok": True})
        elif op == "kill":
            if self.exit_status is not None:
                self._reply(c, {"error": "container %s is not running" % self.config.get("id", "")})
                return
            os.kill(self.pid, int(req.get("signal") or signal.SIGKILL))
            self._reply(c, {"ok": True})
        else:
            self._reply(c, {"error": "unknown op %r" % op})

    def _reply(self, c: _Conn, obj) -> None:
        c.mode = "reply"
        self._send(c, json.dumps(obj).encode() + b"\n")
        self._close_after_flush(c)

    def _send(self, c: _Conn, data: bytes) -> None:
        c.outbuf += data
        self._flush_conn(c)

    def _flush_conn(self, c: _Conn) -> None:
        if c.outbuf:
            try:
                n = c.sock.send(c.outbuf)
                c.outbuf = c.outbuf[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(c)
                return
        if not c.outbuf and c.close_when_flushed:
            self._drop(c)
            return
        self._update_interest(c)

    def _update_interest(self, c: _Conn) -> None:
        if c.sock.fileno() not in self.conns:
            return
        ev = (selectors.EVENT_READ if c.read_open else 0) | (selectors.EVENT_WRITE if c.outbuf else 0)
        registered = c.sock.fileno() in self.sel.get_map()
        if ev and registered:
            self.sel.modify(c.sock, ev, c)
        elif ev:
            self.sel.register(c.sock, ev, c)
        elif registered:
            self.sel.unregister(c.sock)  # nothing to read or write until output arrives

    def _close_after_flush(self, c: _Conn) -> None:
        c.close_when_flushed = True
        if not c.outbuf:
            self._drop(c)

    def _drop(self, c: _Conn) -> None:
        fd = c.sock.fileno()
        if fd in self.conns:
            del self.conns[fd]
            if fd in self.sel.get_map():
                self.sel.unregister(fd)
        if c in self.waiters:
            self.waiters.remove(c)
        if c in self.start_waiters:
            self.start_waiters.remove(c)
        try:
            c.sock.close()
        except OSError:
            pass

    # exit -------------------------------------------------------------------------------
    def _finish(self) -> None:
        for fd in list(self.outputs):
            self.sel.unregister(fd)
            os.close(fd)
            self.outputs.pop(fd)
        if self.log:
            self.log.close()
            self.log = None
        if self.stdin_fd is not None:
            if self.stdin_fd in self.sel.get_map():
                self.sel.unregister(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = None
        err = self.start_error["error"] if self.start_error else ""
        self.exit_record = {"exit_code": self.exit_status, "oom_killed": self.cgroup.oom_killed(),
                            "finished_at": util.now_rfc3339(), "error": err}
        self.finished_at = time.monotonic()
        # Release the cgroup and the mounts before anyone hears of the exit: a restart that
        # follows at once must find nothing of this run left (an exec helper parked in the
        # cgroup, say, still dying).
        self._cleanup()
        # no fsync: after a crash of the machine the container is gone whatever this file says
        util.write_json(os.path.join(self.bundle, "exit.json"), self.exit_record, durable=False)
        self.status = "exited"
        waiters, starters = self.waiters, self.start_waiters
        self.waiters, self.start_waiters = [], []
        for c in waiters:
            self._reply(c, self.exit_record)
        for c in starters:
            self._reply(c, self._start_reply())
        for c in list(self.conns.values()):
            if c.mode == "attach":
                self._close_after_flush(c)

    def _cleanup(self) -> None:
        try:
            self.cgroup.destroy()
        except OSError:
            pass
        merged = (self.config.get("rootfs") or {}).get("merged")
        if merged:
            try:
                ns.umount2(merged, ns.MNT_DETACH)  # mounted only in the container's namespace
            except OSError:
                pass

    def _leave(self) -> None:
        try:
            os.unlink(os.path.join(self.bundle, "shim.sock"))
        except OSError:
            pass
        self.listener.close()
