"""HTTP/1.1 over a unix socket: requests, responses, chunked bodies, streaming and hijacking.

The Docker clients rely on details a generic server gets wrong: chunked request bodies (the Go
client streams uploads), streamed responses flushed per message, keep-alive between requests,
and connections hijacked after ``101 UPGRADED`` for attach and exec.
"""

from __future__ import annotations

import json
import socket
import urllib.parse

from ..errors import InvalidParameter

MAX_HEADER_LINE = 65536
MAX_JSON_BODY = 64 * 1024 * 1024


class Request:
    """One parsed request. ``query`` maps each name to its last value; ``query_all`` to all."""

    def __init__(self, method, target, headers, rfile, version):
        self.method = method
        self.target = target
        self.headers = headers
        self.rfile = rfile
        self.http_version = version
        parsed = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parsed.path)
        self.query_all = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.query = {k: v[-1] for k, v in self.query_all.items()}
        self.api_version = None
        self.params = {}
        self._body_reader = None
        self.body_consumed = False

    @property
    def chunked(self):
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def body(self):
        """A file-like object over the request body (de-chunked); empty when there is none."""
        if self._body_reader is None:
            if self.chunked:
                self._body_reader = ChunkedReader(self.rfile)
            else:
                n = self.headers.get("content-length")
                try:
                    length = int(n) if n else 0
                except ValueError:
                    raise InvalidParameter("invalid Content-Length header: %r" % n)
                self._body_reader = LengthReader(self.rfile, length)
        return self._body_reader

    def read_body(self, limit=MAX_JSON_BODY) -> bytes:
        data = self.body().read(limit + 1)
        if len(data) > limit:
            raise InvalidParameter("request body too large")
        return data

    def json(self, default=None):
        """The body as JSON; ``default`` when it is empty. Bad JSON → InvalidParameter."""
        data = self.read_body()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as e:
            raise InvalidParameter("invalid JSON: %s" % e)
        except RecursionError:  # "[[[[…" deeper than Python's stack; Go's decoder caps depth too
            raise InvalidParameter("invalid JSON: nested too deeply")

    def body_done(self) -> bool:
        """True when the whole body has been read (or there is none)."""
        r = self._body_reader
        if r is None:
            return not self.chunked and self.headers.get("content-length", "0").strip() in ("", "0")
        return r.done if isinstance(r, ChunkedReader) else r.left <= 0

    def drain(self, limit=None) -> bool:
        """Consume what is left of the body so the connection can serve the next request.

        Returns False when more than ``limit`` bytes were left (the caller should close).
        """
        if self._body_reader is None:
            self.body()
        r, n = self._body_reader, 0
        while True:
            data = r.read(65536)
            if not data:
                return True
            n += len(data)
            if limit is not None and n > limit:
                return False

    def qbool(self, name, default=False):
        v = self.query.get(name)
        if v is None:
            return default
        return v.lower() not in ("0", "false", "no", "")

    def qint(self, name, default=None):
        v = self.query.get(name)
        if v in (None, ""):
            return default
        try:
            n = int(v)
        except ValueError:
            raise InvalidParameter("invalid value for %s: %r is not an integer" % (name, v))
        if not -(1 << 63) <= n < (1 << 63):  # Go's strconv.Atoi range; past it timers and sizes overflow
            raise InvalidParameter("invalid value for %s: %s is out of range" % (name, v))
        return n

    def qjson(self, name, default=None):
        v = self.query.get(name)
        if not v:
            return default
        try:
            return json.loads(v)
        except (ValueError, RecursionError):
            raise InvalidParameter("invalid JSON in query parameter %s" % name)


class LengthReader:
    def __init__(self, rfile, length):
        self.rfile, self.left = rfile, length

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        if n is None or n < 0 or n > self.left:
            n = self.left
        data = self.rfile.read(n)
        if not data:
            self.left = 0
            return b""
        self.left -= len(data)
        return data


class ChunkedReader:
    """De-chunks a ``Transfer-Encoding: chunked`` body."""

    def __init__(self, rfile):
        self.rfile = rfile
        self.left = 0
        self.done = False

    def _next_chunk(self):
        line = self.rfile.readline(MAX_HEADER_LINE)
        if not line:
            raise InvalidParameter("truncated chunked body")
        digits = line.split(b";", 1)[0].strip()
        # int(x, 16) alone would take "-5" (a negative read means "read to EOF") and "0x10"
        if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
            raise InvalidParameter("malformed chunked body: bad chunk size %r" % digits[:20])
        size = int(digits, 16)
        if size == 0:
            while True:  # trailers
                t = self.rfile.readline(MAX_HEADER_LINE)
                if not t or t in (b"\r\n", b"\n"):
                    break
            self.done = True
        self.left = size

    def read(self, n=-1):
        out = []
        want = n if n is not None and n >= 0 else 1 << 62
        while want > 0 and not self.done:
            if self.left == 0:
                self._next_chunk()
                if self.done:
                    break
            data = self.rfile.read(min(self.left, want))
            if not data:
                raise InvalidParameter("truncated chunked body")
            out.append(data)
            self.left -= len(data)
            want -= len(data)
            if self.left == 0:
                self.rfile.readline(MAX_HEADER_LINE)  # CRLF after the chunk
        return b"".join(out)


class Response:
    """Writes one response. Plain bodies get Content-Length; streams are chunked."""

    def __init__(self, conn, wfile, req):
        self.conn = conn
        self.wfile = wfile
        self.req = req
        self.headers_sent = False
        self.streaming = False
        self.hijacked = False
        self.close_after = False
        self.extra_headers = {}

    def _head(self, status, headers):
        reason = REASONS.get(status, "OK")
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        base = {"Api-Version": API_HEADERS["Api-Version"], "Docker-Experimental": "false",
                "Ostype": "linux", "Server": API_HEADERS["Server"]}
        base.update(self.extra_headers)
        base.update(headers)
        for k, v in base.items():
            lines.append("%s: %s" % (k, v))
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.headers_sent = True

    def send(self, status, body=b"", content_type="application/json", headers=None):
        h = dict(headers or {})
        if status not in (204, 304) or body:
            h["Content-Type"] = content_type
            h["Content-Length"] = str(len(body))
        if self.close_after:
            h["Connection"] = "close"
        self._head(status, h)
        if body and self.req.method != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def json(self, obj, status=200, headers=None):
        self.send(status, (json.dumps(obj) + "\n").encode(), headers=headers)

    def empty(self, status=204, headers=None):
        self.send(status, b"", headers=headers)

    def start_stream(self, status=200, content_type="application/json", headers=None):
        """Send headers for a chunked, promptly flushed stream; then ``write`` chunks."""
        h = dict(headers or {})
        h["Content-Type"] = content_type
        h["Transfer-Encoding"] = "chunked"
        self._head(status, h)
        self.wfile.flush()
        self.streaming = True

    def write(self, data: bytes):
        if not data:
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def write_json(self, obj):
        self.write((json.dumps(obj) + "\r\n").encode())

    def end_stream(self):
        if self.streaming:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.streaming = False

    def hijack(self, content_type="application/vnd.docker.raw-stream"):
        """Answer ``101 UPGRADED`` (or 200 for a client that did not ask to upgrade) and hand
        the raw socket to the caller; the connection is not reused for HTTP afterwards."""
        upgrade = "upgrade" in self.req.headers.get("connection", "").lower()
        if upgrade:
            self.wfile.write(("HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\n"
                              "Upgrade: tcp\r\n" % content_type).encode() + b"\r\n")
        else:
            self.wfile.write(("HTTP/1.1 200 OK\r\nContent-Type: %s\r\n" % content_type).encode() + b"\r\n")
        self.wfile.flush()
        self.headers_sent = True
        self.hijacked = True
        return self.conn


API_HEADERS = {"Api-Version": "1.44", "Server": "hostbridge-engine"}

REASONS = {200: "OK", 201: "Created", 204: "No Content", 101: "UPGRADED", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


def shutdown_write(conn):
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
