"""A minimal QMP (QEMU Machine Protocol) client: enough for power-down, quit and status."""

from __future__ import annotations

import json
import socket
import time

from hostbridge.errors import VMError


def connect_address(address, timeout):
    """Open a socket to a QMP address: ``unix:PATH`` (on Windows too) or ``tcp:HOST:PORT`` (read
    from records of older versions only: new machines never get a QMP port, see
    ``qemu_cmd.qmp_address``)."""
    kind, _, rest = address.partition(":")
    if kind == "unix" and not hasattr(socket, "AF_UNIX"):  # Windows: Python lacks AF_UNIX there
        from hostbridge.tunnel import npipe

        return npipe.connect_unix(rest, timeout)
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(rest)
        except OSError:
            s.close()
            raise
        return s
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return socket.create_connection((host, int(port)), timeout=timeout)
    raise ValueError("bad QMP address %r" % address)


class QMP:
    """One QMP session. Use as a context manager; ``execute`` skips asynchronous events.

    Raises:
        OSError: the socket cannot be reached (the VM is not running).
        VMError: QEMU answered a command with an error.
    """

    def __init__(self, address, timeout=5.0):
        self.address = address
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def __enter__(self):
        self.sock = connect_address(self.address, self.timeout)
        try:
            greeting = self._read()
            if "QMP" not in greeting:
                raise OSError("not a QMP greeting")
            self.execute("qmp_capabilities")
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                raise socket.timeout("QMP read timed out")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, **arguments):
        """Run a command and return its ``return`` value.

        A ``quit`` may close the connection before answering; that counts as success.
        """
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self._send(json.dumps(msg).encode() + b"\n")
        return self._reply(command)

    def execute_with_fd(self, command, fd, **arguments):
        """``execute`` with descriptor ``fd`` passed along (SCM_RIGHTS: a unix socket only), as
        ``getfd`` needs it."""
        msg = {"execute": command, "arguments": arguments}
        socket.send_fds(self.sock, [json.dumps(msg).encode() + b"\n"], [fd])
        return self._reply(command)

    def _send(self, data):
        self.sock.sendall(data)

    def _reply(self, command):
        while True:
            try:
                reply = self._read()
            except ConnectionResetError:
                if command == "quit":
                    return {}
                raise
            if "event" in reply:
                continue
            if "error" in reply:
                raise VMError("QEMU refused %s: %s" % (command, reply["error"].get("desc", reply["error"])))
            return reply.get("return")
