"""/containers/{id}/exec and /exec/{id}/…"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import threading

from ...containers import detach
from ...errors import InvalidParameter
from ..streams import frame
# api.schema is imported by the handlers that check a body: a start (seconds under emulation) does not need it


def create(execs, req, resp, id):
    body = req.json()
    if body is not None:
        from .. import schema
        schema.check(body, schema.EXEC, "the exec config")
    resp.json(execs.create(id, body), status=201)


def inspect(execs, req, resp, id):
    return execs.get(id).inspect()


def resize(execs, req, resp, id):
    h, w = req.qint("h", 0), req.qint("w", 0)
    if not (0 <= h <= 0xFFFF and 0 <= w <= 0xFFFF):
        raise InvalidParameter("invalid terminal size %sx%s: h and w must be between 0 and 65535" % (h, w))
    execs.resize(id, h, w)
    resp.empty(200)


def _pump(src_fd, send):
    while True:
        try:
            data = os.read(src_fd, 65536)
        except OSError:  # EIO: the pty's last writer is gone
            break
        if not data:
            break
        send(data)


def _hang_up(master):
    """What closing a terminal does: SIGHUP to its foreground process group."""
    import termios  # here: the terminal modules are a fair part of a start under emulation
    try:
        pgrp = struct.unpack("i", fcntl.ioctl(master, termios.TIOCGPGRP, b"\0" * 4))[0]
        if pgrp > 0:
            os.killpg(pgrp, signal.SIGHUP)
    except OSError:
        pass


def start(execs, req, resp, id):
    from .. import schema
    body = schema.check(req.json({}), schema.EXEC_START, "the exec start config")
    e = execs.get(id)
    if body.get("Detach"):
        execs.start(id)
        threading.Thread(target=execs.finish, args=(e,), daemon=True).start()
        resp.empty(200)
        return
    tty = bool(e.cfg.get("Tty"))
    # dockerd frames the stream by the start request's Tty, not the exec's: a client that starts
    # a TTY exec with Tty false (the SDK's exec_start default) demuxes stdout frames.
    raw = bool(body.get("Tty"))
    e = execs.start(id, console_size=body.get("ConsoleSize"))
    conn = resp.hijack("application/vnd.docker.raw-stream" if raw else "application/vnd.docker.multiplexed-stream")
    lock = threading.Lock()

    closed = threading.Event()

    def send(stream, data):
        if closed.is_set():
            return
        with lock:
            try:
                conn.sendall(data if raw else frame(stream, data))
            except OSError:
                pass

    keys = detach.Detector(detach.parse(e.cfg.get("DetachKeys"), "escape keys"))

    def feed_stdin():
        dst = e.master if tty else (e.proc.stdin.fileno() if e.proc.stdin else None)
        if dst is None:
            return
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                data, detached = keys.feed(data)
                if data:
                    os.write(dst, data)
                if detached:
                    # dockerd closes the exec's stdin: a TTY hangs up, a pipe reads EOF
                    closed.set()
                    conn.shutdown(2)
                    if tty:
                        _hang_up(e.master)
                    break
        except OSError:
            pass
        if not tty and e.proc.stdin:
            try:
                e.proc.stdin.close()
            except OSError:
                pass

    if e.cfg.get("AttachStdin"):
        threading.Thread(target=feed_stdin, daemon=True).start()
    if tty:
        _pump(e.master, lambda d: send(1, d))
    else:
        # a raw stream has no room for stderr: dockerd drops it (drained, so the process never blocks)
        to_err = (lambda d: None) if raw else (lambda d: send(2, d))
        t = threading.Thread(target=_pump, args=(e.proc.stderr.fileno(), to_err), daemon=True)
        t.start()
        _pump(e.proc.stdout.fileno(), lambda d: send(1, d))
        t.join()
    execs.finish(e)
    try:
        conn.shutdown(2)
    except OSError:
        pass


def register(r):
    add = r.for_backend("execs")
    add("POST", "/containers/{id}/exec", create)
    add("POST", "/exec/{id}/start", start)
    add("POST", "/exec/{id}/resize", resize)
    add("GET", "/exec/{id}/json", inspect)
