"""HTTP to the engine on the standard library: a unix socket or 127.0.0.1, keep-alive.

Why not requests (the ARCHITECTURE's first plan): importing it costs ~90 ms here, against
``docker ps``'s 36 ms for a whole command, and the engine is always one local endpoint (a unix
socket or a tunnel agent's loopback port), so requests' pooling, proxies, TLS and redirects buy
nothing. ``Response`` offers the small part of requests' interface the client uses.
"""

from __future__ import annotations

import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection that dials a unix socket."""

    def __init__(self, socket_path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    """A reply: ``status_code``, ``reason``, ``headers``, ``content``/``text``/``json()`` for
    small bodies, ``raw`` (the live body) and ``iter_content`` for streams."""

    def __init__(self, raw: http.client.HTTPResponse, stream: bool, on_done):
        self.raw = raw
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._on_done = on_done
        self._content = None
        if not stream:
            self._content = raw.read()
            on_done(reusable=not raw.will_close)

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.raw.read()
            self._on_done(reusable=False)
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def iter_content(self, chunk_size=None):
        read = self.raw.read1 if chunk_size is None else (lambda: self.raw.read(chunk_size))
        while True:
            data = read() if chunk_size is not None else read(65536)
            if not data:
                break
            yield data

    def close(self):
        self.raw.close()
        self._on_done(reusable=False)


class Transport:
    """Sends requests to one endpoint over one kept-alive connection (opened lazily).

    Args:
        scheme: ``unix`` or ``tcp``.
        address: the socket path, or ``(host, port)``.
        timeout: seconds for connect and each read; None for no limit.
    """

    def __init__(self, scheme, address, timeout=60):
        self.scheme, self.address, self.timeout = scheme, address, timeout
        self._idle = None

    def _connect(self, timeout):
        if self.scheme == "unix":
            return UnixHTTPConnection(self.address, timeout=timeout)
        host, port = self.address
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, target, body=None, headers=None, stream=False, timeout=60):
        """Send one request; returns a ``Response`` (OSError when the endpoint is unreachable)."""
        conn = self._idle if (self._idle is not None and timeout == self.timeout) else None
        self._idle = None
        chunked = body is not None and not isinstance(body, (bytes, bytearray, str)) and not hasattr(body, "read")
        for attempt in (0, 1):
            if conn is None:
                conn = self._connect(timeout)
            try:
                conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
                raw = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server closed meanwhile: retry once on a new one
                conn.close()
                conn = None
                if attempt or chunked or hasattr(body, "read"):
                    raise
        c = conn

        def on_done(reusable):
            if reusable and timeout == self.timeout and self._idle is None:
                self._idle = c
            elif c is not self._idle:
                c.close()

        return Response(raw, stream, on_done)

    def close(self):
        if self._idle is not None:
            self._idle.close()
            self._idle = None
