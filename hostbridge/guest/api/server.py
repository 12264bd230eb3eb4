"""The engine's HTTP server: a thread per connection on a unix socket, keep-alive, routing.

Routes are registered by the modules in ``routes/``; each handler gets (engine, req, resp) and
path parameters, and either returns a JSON-able object (sent as 200), or writes the response
itself through ``resp``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import threading
import time

from .. import API_VERSION, MIN_API_VERSION
from ..errors import GuestError, InvalidParameter
from .errors import status_for
from .http import MAX_HEADER_LINE, REASONS, Request, Response



def _log():
    import logging  # not at import: the socket listens before the daemon spends time on logging
    return logging.getLogger("hostbridge.api")

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_MAX_HEADERS = 200
_MAX_DRAIN = 1 << 20
_LINGER_SECONDS, _LINGER_BYTES = 2.0, 64 << 20
_HTTP_VERSION = re.compile(r"^HTTP/\d\.\d$")


class _BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _on_backend(handler, name):
    def call(engine, req, resp, **params):
        return handler(engine.backend(name), req, resp, **params)
    call.__name__ = getattr(handler, "__name__", "handler")
    return call


class Router:
    """Routes by method and path pattern. A pattern's regex is compiled at its first match
    attempt, and a path is tried only against the patterns of its first segment: some hundred
    regexes compiled at start cost a second in an emulated guest."""

    def __init__(self):
        self.routes = []  # [method, pattern, handler, compiled regex or None], in the order added
        self._by_head = {}  # first path segment → indices into routes (a {param} head: key None)

    def add(self, method, pattern, handler, backend=None):
        """Route ``method pattern`` to ``handler(target, req, resp, **params)``.

        ``target`` is the engine, or with ``backend`` the engine's narrow backend of that name.
        """
        if backend is not None:
            handler = _on_backend(handler, backend)
        head = pattern.split("/")[1]
        self._by_head.setdefault(None if "{" in head else head, []).append(len(self.routes))
        self.routes.append([method, pattern, handler, None])

    def for_backend(self, backend):
        """An ``add(method, pattern, handler)`` whose handlers get the engine's backend ``backend``."""
        return lambda method, pattern, handler: self.add(method, pattern, handler, backend)

    def route(self, method, pattern):
        def deco(fn):
            self.add(method, pattern, fn)
            return fn
        return deco

    @staticmethod
    def _compile(pattern):
        # {name} matches one path segment, {name*} the rest (image names contain slashes)
        rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
        return re.compile("^" + rx + "$")

    def match(self, method, path):
        """(handler, params) or (None, allowed_methods)."""
        allowed = []
        candidates = self._by_head.get(path.split("/", 2)[1] if path.startswith("/") else None, [])
        if None in self._by_head:
            candidates = sorted(candidates + self._by_head[None])
        for i in candidates:
            route = self.routes[i]
            m, h = route[0], route[2]
            if route[3] is None:
                route[3] = self._compile(route[1])
            mo = route[3].match(path)
            if mo:
                if m == method or (method == "HEAD" and m == "GET"):
                    return h, mo.groupdict()
                allowed.append(m)
        return None, allowed


def _version_tuple(v):
    a, b = v.split(".")
    return int(a), int(b)


class _Handler(socketserver.StreamRequestHandler):
    rbufsize = 65536
    wbufsize = 65536
    disable_nagle_algorithm = False

    def handle(self):
        srv = self.server
        while not srv.stopping:
            try:
                req = self._read_request()
            except (ConnectionError, OSError, ValueError):
                return
            if req is None:
                return
            resp = Response(self.connection, self.wfile, req)
            if req.headers.get("connection", "").lower() == "close" or req.http_version == "HTTP/1.0":
                resp.close_after = True
            try:
                self._dispatch(req, resp)
            except (BrokenPipeError, ConnectionResetError):
                return
            if resp.hijacked or resp.streaming:
                return
            if resp.close_after:
                if not req.body_done():
                    self._linger_close()
                return
            try:
                # the rest of a body the handler left: bounded in size and, for a stalled client, in time
                self.connection.settimeout(srv.header_timeout)
                if not req.drain(_MAX_DRAIN):
                    self._linger_close()  # a large unread body: closing beats reading it all
                    return
                self.connection.settimeout(None)
            except Exception:
                return

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass  # the client went away before we flushed: nothing left to tell it

    def _reject(self, status, message):
        """Answer a request we could not parse, then drop the connection (we no longer know
        where the next request would start, so reading on could smuggle one)."""
        body = (json.dumps({"message": message}) + "\n").encode()
        self.wfile.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (status, REASONS.get(status, "Error").encode(),
                                                             len(body), body))
        self.wfile.flush()
        self._linger_close()

    def _linger_close(self):
        """End our side, then discard what the client still sends for a bounded while.

        Closing a socket with unread input resets it, and the client would lose the answer we
        just wrote; a client still sending (an upload we refused) reads it once it looks.
        """
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_SECONDS)
            end, n = time.monotonic() + _LINGER_SECONDS, 0
            while n < _LINGER_BYTES and time.monotonic() < end:
                data = self.rfile.read1(65536)
                if not data:
                    break
                n += len(data)
        except (OSError, ValueError):
            pass

    def _readline(self):
        line = self.rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise _BadRequest(431, "request line or header longer than %d bytes" % MAX_HEADER_LINE)
        return line

    def _read_request(self):
        # A client that sends half a request and then nothing must not hold a thread forever:
        # the head (request line and headers) is read under a timeout, like Go's ReadHeaderTimeout.
        self.connection.settimeout(self.server.header_timeout)
        try:
            return self._read_head()
        except _BadRequest as e:
            self._reject(e.status, e.message)
            return None
        finally:
            self.connection.settimeout(None)

    def _read_head(self):
        line = self._readline()
        if not line:
            return None
        while line in (b"\r\n", b"\n"):
            line = self._readline()
            if not line:
                return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise _BadRequest(400, "malformed HTTP request line")
        method, target, version = parts
        if not _HTTP_VERSION.match(version):
            raise _BadRequest(400, "malformed HTTP version %r" % version[:20])
        if not version.startswith("HTTP/1."):
            raise _BadRequest(505, "HTTP version %s is not supported (HTTP/1.0 and HTTP/1.1 are)" % version[:20])
        headers = {}
        for _ in range(_MAX_HEADERS + 1):
            h = self._readline()
            if not h:
                return None  # the client left before the end of the head
            if h in (b"\r\n", b"\n"):
                break
            k, colon, v = h.decode("latin-1").partition(":")
            if not colon or not k.strip() or k != k.strip():
                raise _BadRequest(400, "malformed MIME header line: %r" % h.rstrip(b"\r\n")[:40].decode("latin-1"))
            k, v = k.lower(), v.strip()
            if k == "content-length" and headers.get(k, v) != v:
                raise _BadRequest(400, "conflicting Content-Length headers")  # which body? (smuggling)
            headers[k] = v
        else:
            raise _BadRequest(431, "too many header fields (more than %d)" % _MAX_HEADERS)
        te = headers.get("transfer-encoding", "").strip().lower()
        if te not in ("", "chunked"):
            raise _BadRequest(501, "unsupported transfer encoding: %r" % te[:40])
        n = headers.get("content-length")
        if n is not None and "chunked" not in headers.get("transfer-encoding", "").lower() and not n.isdigit():
            raise _BadRequest(400, "invalid Content-Length header: %r" % n[:40])
        return Request(method.upper(), target, headers, self.rfile, version)

    def _dispatch(self, req, resp):
        srv = self.server
        path = req.path
        mo = _VERSION_PREFIX.match(path)
        if mo:
            req.api_version = "%s.%s" % (mo.group(1), mo.group(2))
            path = mo.group(3)
            if _version_tuple(req.api_version) < _version_tuple(MIN_API_VERSION):
                resp.json({"message": "client version %s is too old. Minimum supported API version is %s, "
                                      "please upgrade your client to a newer version"
                                      % (req.api_version, MIN_API_VERSION)}, status=400)
                return
            if _version_tuple(req.api_version) > _version_tuple(API_VERSION):
                resp.json({"message": "client version %s is too new. Maximum supported API version is %s"
                                      % (req.api_version, API_VERSION)}, status=400)
                return
        else:
            req.api_version = API_VERSION
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        handler, params = srv.route(req.method, path,
                                    on_failed=lambda message: resp.json({"message": message}, status=500))
        if handler is None and srv.start_error:
            return
        if handler is None:
            # dockerd answers a known path with the wrong method the same way as an unknown one
            resp.json({"message": "page not found"}, status=404)
            return
        req.params = params
        try:
            if "\x00" in req.path or "\x00" in req.target or any("\x00" in v for v in req.query.values()):
                # no name, path or value of the API holds a NUL; the OS would refuse it deep inside
                raise InvalidParameter("invalid request: NUL byte in the URL")
            result = handler(srv.engine, req, resp, **params)
            if not resp.headers_sent:
                if result is None:
                    resp.empty(204)
                else:
                    resp.json(result)
        except GuestError as exc:
            self._error(resp, status_for(exc), str(exc))
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug: log it whole, answer 500, keep serving
            _log().exception("error serving %s %s", req.method, req.path)
            self._error(resp, 500, "internal error: %s" % exc)

    def _error(self, resp, status, message):
        if resp.hijacked:
            return
        if not resp.req.body_done():
            # a refused request whose body is still coming (an endless or huge upload): answer,
            # then close rather than read the rest to reach the next request
            resp.close_after = True
        if resp.streaming:
            try:
                resp.write_json({"errorDetail": {"message": message}, "error": message})
                resp.end_stream()
            except OSError:
                pass
            return
        if resp.headers_sent:
            return
        if status == 304:
            resp.empty(304)
        else:
            resp.json({"message": message}, status=status)


class APIServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The API on a unix socket.

    Made with ``engine`` and ``router`` None, it listens while the engine is still starting:
    the ``early`` router's requests (``/_ping``, ``/version``: nothing of the engine) are
    answered at once, the others wait for ``ready()`` (or get ``failed()``'s message).
    """
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of clients must not see EAGAIN on connect
    header_timeout = 300.0  # seconds to send a request's head (dockerd's ReadHeaderTimeout)

    def __init__(self, socket_path, engine, router, group=None, early=None):
        self.engine = engine
        self.router = router
        self.early = early
        self.start_error = None  # the engine's start failed: every waiting request is told this
        self._started = threading.Event()
        if router is not None:
            self._started.set()
        self._waiting = 0
        self._waiting_cond = threading.Condition()
        self.stopping = False
        self.socket_path = socket_path
        os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
        try:
            os.unlink(socket_path)
        except FileNotFoundError:
            pass
        old = os.umask(0o117)
        try:
            super().__init__(socket_path, _Handler)
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o660)
        if group is not None:
            os.chown(socket_path, 0, group)

    def route(self, method, path, on_failed):
        """(handler, params) or (None, allowed methods). While the engine starts, a request the
        early router does not know waits for it; if its start fails, ``on_failed(message)``
        answers the request and (None, []) is returned."""
        if not self._started.is_set():
            if self.early is not None:
                handler, params = self.early.match(method, path)
                if handler is not None:
                    return handler, params
            with self._waiting_cond:
                self._waiting += 1
            try:
                self._started.wait()
                if self.start_error:
                    on_failed(self.start_error)
            finally:
                with self._waiting_cond:
                    self._waiting -= 1
                    self._waiting_cond.notify_all()
            if self.start_error:
                return None, []
        elif self.start_error:
            on_failed(self.start_error)
            return None, []
        return self.router.match(method, path)

    def ready(self, engine, router):
        """The engine has started: serve every route."""
        self.engine, self.router = engine, router
        self._started.set()

    def failed(self, message, timeout=5.0):
        """The engine could not start: answer the waiting requests with ``message`` (up to
        ``timeout`` seconds for them to be told) before the caller stops the server."""
        self.start_error = message
        self._started.set()
        end = time.monotonic() + timeout
        with self._waiting_cond:
            while self._waiting and time.monotonic() < end:
                self._waiting_cond.wait(end - time.monotonic())

    def serve_in_thread(self):
        t = threading.Thread(target=self.serve_forever, name="api", daemon=True)
        t.start()
        return t

    def stop(self):
        self.stopping = True
        self.shutdown()
        self.server_close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def handle_error(self, request, client_address):
        _log().exception("connection error")
