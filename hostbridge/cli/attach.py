"""Streaming a container's stdio to this terminal: used by ``run`` (not -d) and ``start -a``."""

from __future__ import annotations

import os
import signal
import sys
import threading

from ..client.streams import frames, raw_chunks


class Terminal:
    """Raw mode for a TTY session, restored on exit (a no-op when stdin is not a terminal)."""

    def __init__(self, enabled):
        self.enabled = enabled and sys.stdin.isatty()
        self._saved = None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            self._saved = termios.tcgetattr(0)
            tty.setraw(0)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self._saved)

    @staticmethod
    def size():
        """``(rows, cols)`` of this terminal, or None."""
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            return size.lines, size.columns
        except OSError:
            return None


# The signals `docker run` forwards to a container without a TTY (its --sig-proxy default).
PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


class SignalProxy:
    """While attached: forward signals we receive to the container, or follow window resizes.

    Args:
        kill: ``kill(signal_number_text)`` (the client's ``kill`` bound to the container).
        resize: ``resize()`` for a TTY session, called on SIGWINCH; None without a TTY.
        forward: forward ``PROXIED`` signals (docker does so only without a TTY).
    """

    def __init__(self, kill, resize=None, forward=True):
        self.kill, self.resize, self.forward = kill, resize, forward
        self._saved = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be set from the main thread
        names = (PROXIED if self.forward else ()) + (("SIGWINCH",) if self.resize else ())
        for name in names:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        # HTTP from a signal handler could interleave with the main thread's: use a thread.
        target = self.resize if signum == getattr(signal, "SIGWINCH", None) else (lambda: self.kill(str(signum)))
        threading.Thread(target=quietly, args=(target,), daemon=True).start()


def quietly(call):
    """Call ``call()``, ignoring engine errors (the container may be gone already)."""
    from ..errors import HostbridgeError

    try:
        call()
    except HostbridgeError:
        pass


def _pump_stdin(sock):
    # Forward our stdin until its end, then half-close so the container sees EOF.
    try:
        while True:
            data = os.read(0, 32768)
            if not data:
                break
            sock.write(data)
    except OSError:
        pass
    finally:
        sock.shutdown_write()


def stream(app, sock, tty, stdin):
    """Copy the container's output to ours (and our stdin to it) until the stream ends.

    Args:
        app: the ``App`` (writes bytes to stdout/stderr).
        sock: the ``HijackedSocket`` from attach.
        tty: the container has a TTY (raw stream, not multiplexed frames).
        stdin: forward our stdin.
    """
    if stdin:
        threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    chunks = raw_chunks(sock.read) if tty else frames(sock.read)
    try:
        for stream_no, data in chunks:
            app.write_bytes(data, 2 if stream_no == 2 else 1)
    finally:
        sock.close()
