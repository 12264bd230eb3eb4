"""SSH channels to a far-side unix socket, and the byte pump between them and local sockets.

paramiko has no helper for OpenSSH's ``direct-streamlocal@openssh.com`` channel (OpenSSH
PROTOCOL §2.4: ``string socket path, string reserved, uint32 reserved``), so
``open_streamlocal`` builds the CHANNEL_OPEN itself, mirroring ``Transport.open_channel``.
Where the server refuses streamlocal (``AllowStreamLocalForwarding no``) the caller falls back
to ``relay_command``: a stdlib relay (hostbridge/guest/relay.py) run with ``python3 -c``.
"""

from __future__ import annotations

import select
import shlex
import socket
import threading
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN
from paramiko.message import Message

STREAMLOCAL = "direct-streamlocal@openssh.com"
BUFSIZE = 256 * 1024


def open_streamlocal(transport: paramiko.Transport, path: str, timeout: float = 10) -> paramiko.Channel:
    """Open a ``direct-streamlocal@openssh.com`` channel to ``path`` on the server.

    Raises:
        paramiko.ChannelException: the server refused (e.g. streamlocal forwarding disabled,
            code 1 ADMINISTRATIVELY_PROHIBITED; or the socket is missing, code 2).
        paramiko.SSHException: the session is down or the open timed out.
    """
    if not transport.active:
        raise paramiko.SSHException("SSH session not active")
    # The bookkeeping below is Transport.open_channel's; only the payload differs.
    with transport.lock:
        window = transport._sanitize_window_size(None)
        max_packet = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(STREAMLOCAL)
        m.add_int(chanid)
        m.add_int(window)
        m.add_int(max_packet)
        m.add_string(path)
        m.add_string("")  # reserved
        m.add_int(0)  # reserved
        chan = paramiko.Channel(chanid)
        transport._channels.put(chanid, chan)
        event = transport.channel_events[chanid] = threading.Event()
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window, max_packet)
    transport._send_user_message(m)
    deadline = time.monotonic() + timeout
    while not event.wait(0.1):
        if not transport.active:
            raise transport.get_exception() or paramiko.SSHException("SSH session closed")
        if time.monotonic() > deadline:
            raise paramiko.SSHException("timeout opening a streamlocal channel to %s" % path)
    chan = transport._channels.get(chanid)
    if chan is not None:
        return chan
    # paramiko keeps one "saved exception" per transport: a thread opening another channel at
    # the same time may have taken ours, so a refusal without its reason is still a refusal.
    e = transport.get_exception()
    if isinstance(e, paramiko.ChannelException):
        raise e
    raise paramiko.ChannelException(0, "the server refused the channel to %s" % path)


def relay_source() -> str:
    """The source of the far-side stdio relay (a stdlib-only script)."""
    from ..guest import relay

    with open(relay.__file__, encoding="utf-8") as f:
        return f.read()


def relay_command(path: str, python: str = "python3") -> str:
    """A shell command relaying its stdio to the unix socket ``path`` on the far side."""
    return "%s -S -c %s %s" % (python, shlex.quote(relay_source()), shlex.quote(path))


def open_relay(transport: paramiko.Transport, path: str, timeout: float = 10) -> paramiko.Channel:
    """A session channel running the stdio relay to ``path`` on the far side (no streamlocal)."""
    chan = transport.open_session(timeout=timeout)
    chan.exec_command(relay_command(path))
    return chan


def read_all(chan: paramiko.Channel) -> tuple:
    """Read a command channel's stdout and stderr to their ends. Returns (out, err) bytes."""
    err = []
    t = threading.Thread(target=lambda: err.append(chan.makefile_stderr("rb").read()), daemon=True)
    t.start()
    out = chan.makefile("rb").read()
    t.join()
    return out, b"".join(err)


def pump(sock: socket.socket, chan, on_bytes=None) -> None:
    """Copy bytes both ways between a local socket and a channel until both directions end.

    Half-close is passed through: EOF from the local side becomes the channel's EOF
    (``shutdown_write``) and the channel's EOF becomes ``shutdown(SHUT_WR)`` locally, so
    hijacked docker streams (attach, exec) keep working. Closes both ends on return.

    Args:
        sock: the accepted local connection.
        chan: a paramiko Channel (or any socket-like object with fileno/recv/sendall).
        on_bytes: optional callback(n) per chunk, for statistics.
    """
    ends = {sock: chan, chan: sock}
    open_ = [sock, chan]
    try:
        while open_:
            readable, _, _ = select.select(open_, [], [], 30)
            for src in readable:
                dst = ends[src]
                try:
                    data = src.recv(BUFSIZE)
                except (OSError, EOFError):
                    data = b""
                if data:
                    dst.sendall(data)
                    if on_bytes:
                        on_bytes(len(data))
                    continue
                open_.remove(src)
                _shutdown_write(dst)
            if chan not in open_ and getattr(chan, "closed", False):
                break  # the far side closed: what the local side still sends has nowhere to go
    finally:
        _close(sock)
        _close(chan)


def pump_threads(stream, chan, on_bytes=None) -> None:
    """``pump`` for a local end select() cannot watch (a Windows named pipe): a thread per direction.

    Half-close passes through as in ``pump``; once the far side has closed, the local end is
    closed too, which ends a read still waiting on it. Closes both ends on return.

    Args:
        stream: the local end (``recv``/``sendall``/``shutdown``/``close``).
        chan: a paramiko Channel (or another such end).
        on_bytes: optional callback(n) per chunk.
    """
    def copy(src, dst):
        try:
            while True:
                try:
                    data = src.recv(BUFSIZE)
                except (OSError, EOFError):
                    data = b""
                if not data:
                    break
                dst.sendall(data)
                if on_bytes:
                    on_bytes(len(data))
        except OSError:
            pass  # dst went away: this direction is over
        finally:
            _shutdown_write(dst)

    def far_to_local():
        copy(chan, stream)
        if getattr(chan, "closed", False):
            _close(stream)  # nothing more can go out: stop waiting on the local side

    back = threading.Thread(target=far_to_local, name="pump-back", daemon=True)
    back.start()
    try:
        copy(stream, chan)
        back.join()
    finally:
        _close(stream)
        _close(chan)


def _shutdown_write(end) -> None:
    try:
        if isinstance(end, paramiko.Channel):
            end.shutdown_write()
        else:
            end.shutdown(socket.SHUT_WR)
    except (OSError, EOFError):
        pass


def _close(end) -> None:
    try:
        end.close()
    except (OSError, EOFError):
        pass


__all__ = ["open_streamlocal", "open_relay", "relay_command", "relay_source", "read_all", "pump", "pump_threads",
           "STREAMLOCAL"]
