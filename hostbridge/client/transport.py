"""HTTP/1.1 to the engine on plain sockets: one kept-alive connection, streamed bodies, and the
pieces hijacked connections reuse (``write_request``, ``read_head``).

Why not requests or http.client: importing requests costs ~90 ms and http.client (with email
and ssl) ~10 ms, against ``docker ps``'s 36 ms for a whole command. The engine is always one
local endpoint (a unix socket or a tunnel agent's loopback port), so pooling, proxies, TLS and
redirects buy nothing. ``Response`` offers the small part of requests' interface the client uses.
"""

from __future__ import annotations

import json
import os

_CHUNK = 65536
MAX_HEAD = 65536
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text) -> str:
    """Percent-encode everything but RFC 3986's unreserved characters (``/`` too).

    urllib.parse would do, but importing it (with ipaddress) costs ``hostbridge ps`` 1.7 ms.
    """
    data = str(text).encode("utf-8")
    if all(b in _UNRESERVED for b in data):
        return data.decode("ascii")
    return "".join(chr(b) if b in _UNRESERVED else "%%%02X" % b for b in data)


def urlencode(params) -> str:
    """``{"all": 1, "filters": "{…}"}`` or pairs → ``all=1&filters=%7B…``."""
    items = params.items() if hasattr(params, "items") else params
    return "&".join("%s=%s" % (quote(k), quote(v)) for k, v in items)


class Conn:
    """A socket with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def recv_some(self, n=_CHUNK) -> bytes:
        """Buffered bytes first, else one recv (``b""`` at EOF)."""
        if self.buf:
            data, self.buf = self.buf[:n], self.buf[n:]
            return data
        return self.sock.recv(n)

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            data = self.sock.recv(_CHUNK)
            if not data:
                line, self.buf = self.buf, b""
                return line
            self.buf += data
            if len(self.buf) > MAX_HEAD:
                raise ValueError("reply line too long")
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def write_request(sock, method, target, headers, body=None):
    """Send a request. ``body``: bytes, a file, or an iterable of bytes (sent chunked)."""
    h = {"Host": "localhost", "User-Agent": "hostbridge"}
    h.update(headers or {})
    chunks = None
    if body is None:
        if method in ("POST", "PUT"):
            h["Content-Length"] = "0"
    elif isinstance(body, (bytes, bytearray)):
        h["Content-Length"] = str(len(body))
    elif hasattr(body, "read"):
        size = _file_size(body)
        if size is None:
            h["Transfer-Encoding"] = "chunked"
            chunks = iter(lambda: body.read(_CHUNK), b"")
        else:
            h["Content-Length"] = str(size)
    else:
        h["Transfer-Encoding"] = "chunked"
        chunks = iter(body)
    head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, target, "".join("%s: %s\r\n" % kv for kv in h.items()))
    if isinstance(body, (bytes, bytearray)):
        sock.sendall(head.encode("latin-1") + bytes(body))
        return
    sock.sendall(head.encode("latin-1"))
    if chunks is not None:
        for data in chunks:
            if data:
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        sock.sendall(b"0\r\n\r\n")
    elif body is not None:
        while True:
            data = body.read(_CHUNK)
            if not data:
                break
            sock.sendall(data)


def _file_size(f):
    try:
        st = os.fstat(f.fileno())
        if not (st.st_mode & 0o170000 == 0o100000):
            return None
        return st.st_size - f.tell()
    except (AttributeError, OSError, ValueError):
        return None


def read_head(conn: Conn):
    """``(status, reason, headers)`` of the next reply; headers' names lower-cased."""
    line = conn.readline()
    while line in (b"\r\n", b"\n"):
        line = conn.readline()
    if not line:
        raise ConnectionError("the engine closed the connection before replying")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError("malformed reply status line: %r" % line[:80])
    headers = Headers()
    for _ in range(200):
        h = conn.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), (parts[2] if len(parts) > 2 else ""), headers


class Headers(dict):
    """Reply headers; ``get``/``[]`` ignore case, as HTTP does."""

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())


class Body:
    """The reply body as a stream: ``read(n)`` and ``read1(n)`` (what has arrived)."""

    def __init__(self, conn: Conn, headers, method, status):
        self.conn = conn
        self.done = False
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.left = None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.done = True
        elif not self.chunked and headers.get("content-length") is not None:
            self.left = int(headers["content-length"])
            self.done = self.left == 0
        self.chunk_left = 0
        self.will_close = headers.get("connection", "").lower() == "close" or (self.left is None and not self.chunked and not self.done)

    def read1(self, n=_CHUNK) -> bytes:
        if self.done:
            return b""
        if self.chunked:
            if self.chunk_left == 0:
                line = self.conn.readline()
                if not line:
                    raise ConnectionError("the reply was cut short")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.conn.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.done = True
                    return b""
                self.chunk_left = size
            data = self.conn.recv_some(min(n, self.chunk_left))
            if not data:
                raise ConnectionError("the reply was cut short")
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.conn.readline()
            return data
        want = n if self.left is None else min(n, self.left)
        data = self.conn.recv_some(want)
        if not data:
            if self.left:
                raise ConnectionError("the reply was cut short")
            self.done = True
            return b""
        if self.left is not None:
            self.left -= len(data)
            self.done = self.left == 0
        return data

    def read(self, n=-1) -> bytes:
        out = []
        got = 0
        while (n is None or n < 0 or got < n) and not self.done:
            data = self.read1(_CHUNK if n is None or n < 0 else n - got)
            if not data:
                break
            out.append(data)
            got += len(data)
        return b"".join(out)

    def close(self):
        self.conn.close()


class Response:
    """A reply: ``status_code``, ``reason``, ``headers``, ``content``/``text``/``json()`` for
    small bodies, ``raw`` (the live body: ``read``/``read1``) and ``iter_content`` for streams."""

    def __init__(self, status, reason, headers, raw: Body, stream: bool, on_done):
        self.status_code, self.reason, self.headers, self.raw = status, reason, headers, raw
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
        while True:
            data = self.raw.read1(_CHUNK) if chunk_size is None else self.raw.read(chunk_size)
            if not data:
                break
            yield data

    def close(self):
        self._on_done(reusable=False)


class Transport:
    """Sends requests to one endpoint over one kept-alive connection (opened lazily).

    Args:
        endpoint: a ``client.endpoint.Endpoint`` (its ``connect`` dials the socket).
        timeout: seconds for connect and each read; None for no limit.
    """

    def __init__(self, endpoint, timeout=60):
        self.endpoint, self.timeout = endpoint, timeout
        self._idle = None

    def request(self, method, target, body=None, headers=None, stream=False, timeout=60):
        """Send one request; returns a ``Response``. OSError: the endpoint is unreachable."""
        conn, reused = self._idle, self._idle is not None
        self._idle = None
        for attempt in (0, 1):
            if conn is None:
                conn = Conn(self.endpoint.connect_raw(timeout))
            else:
                conn.sock.settimeout(timeout)
            try:
                write_request(conn.sock, method, target, headers, body)
                status, reason, h = read_head(conn)
                break
            except (ConnectionError, BrokenPipeError):
                conn.close()
                conn = None
                # a kept-alive connection the engine closed meanwhile: once more on a new one
                if attempt or not reused or (body is not None and not isinstance(body, (bytes, bytearray))):
                    raise
        raw = Body(conn, h, method, status)

        def on_done(reusable):
            if reusable and raw.done and self._idle is None:
                self._idle = conn
            elif conn is not self._idle:
                conn.close()

        return Response(status, reason, h, raw, stream, on_done)

    def close(self):
        if self._idle is not None:
            self._idle.close()
            self._idle = None
