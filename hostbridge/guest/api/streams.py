"""Moving bytes: docker's 8-byte multiplexed frames, and a two-way relay for hijacked sockets."""

from __future__ import annotations

import socket
import struct
import threading

STDIN, STDOUT, STDERR = 0, 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame: stream byte, 3 zero bytes, big-endian length, payload."""
    return struct.pack(">BxxxL", stream, len(data)) + data


class JsonLines:
    """A ``send(message)`` for a backend: JSON lines in a chunked response that starts with the
    first message, so that an error raised before it is still answered with its status."""

    def __init__(self, resp):
        self.resp = resp

    def __call__(self, message: dict) -> None:
        if not self.resp.streaming:
            self.resp.start_stream()
        self.resp.write_json(message)

    def finish(self) -> None:
        if not self.resp.streaming:
            self.resp.start_stream()
        self.resp.end_stream()


class ChunkWriter:
    """A file-like writer onto a streaming response: the tars a backend writes."""

    def __init__(self, resp):
        self.resp = resp

    def write(self, data) -> int:
        self.resp.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def relay(client: socket.socket, backend: socket.socket, send_stdin: bool, prefix: bytes = b"",
          detach=None):
    """Pump ``backend`` → ``client`` until the backend closes; ``client`` → ``backend`` in a
    thread when ``send_stdin``. A client half-close is passed on as a half-close (the container's
    stdin closes, output keeps flowing); a client that goes away ends the relay.

    ``detach``: a ``containers.detach.Detector``; its key sequence in the client's input ends
    the relay both ways and leaves the container running, as dockerd's detach keys do."""
    if prefix:
        client.sendall(prefix)

    def pump_in():
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                detached = False
                if detach is not None:
                    data, detached = detach.feed(data)
                if data:
                    backend.sendall(data)
                if detached:
                    backend.shutdown(socket.SHUT_RDWR)  # ends the output side below too
                    return
        except OSError:
            pass
        try:
            backend.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = None
    if send_stdin:
        t = threading.Thread(target=pump_in, daemon=True, name="attach-stdin")
        t.start()
    try:
        while True:
            data = backend.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        try:
            backend.close()
        except OSError:
            pass
