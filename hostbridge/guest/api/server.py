"""The engine's HTTP server: a thread per connection on a unix socket, keep-alive, routing.

Routes are registered by the modules in ``routes/``; each handler gets (engine, req, resp) and
path parameters, and either returns a JSON-able object (sent as 200), or writes the response
itself through ``resp``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import socketserver
import threading

from .. import API_VERSION, MIN_API_VERSION
from ..errors import GuestError
from .errors import status_for
from .http import MAX_HEADER_LINE, Request, Response

log = logging.getLogger("hostbridge.api")

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_MAX_HEADERS = 200


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler):
        # {name} matches one path segment, {name*} the rest (image names contain slashes)
        rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
        self.routes.append((method, re.compile("^" + rx + "$"), handler))

    def route(self, method, pattern):
        def deco(fn):
            self.add(method, pattern, fn)
            return fn
        return deco

    def match(self, method, path):
        """(handler, params) or (None, allowed_methods)."""
        allowed = []
        for m, rx, h in self.routes:
            mo = rx.match(path)
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

    def finish(self):
        try:
            super().finish()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left mid-stream (a pull it gave up on): nothing left to tell it

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
            if resp.hijacked or resp.close_after:
                return
            if resp.streaming:
                return
            try:
                req.drain()
            except Exception:
                return

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass  # the client went away before we flushed: nothing left to tell it

    def _read_request(self):
        line = self.rfile.readline(MAX_HEADER_LINE + 1)
        if not line:
            return None
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if not line:
                return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None
        method, target, version = parts
        headers = {}
        for _ in range(_MAX_HEADERS):
            h = self.rfile.readline(MAX_HEADER_LINE + 1)
            if not h or h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
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
        handler, params = srv.router.match(req.method, path)
        if handler is None:
            # dockerd answers a known path with the wrong method the same way as an unknown one
            resp.json({"message": "page not found"}, status=404)
            return
        req.params = params
        try:
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
            log.exception("error serving %s %s", req.method, req.path)
            self._error(resp, 500, "internal error: %s" % exc)

    def _error(self, resp, status, message):
        if resp.hijacked:
            return
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
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, socket_path, engine, router, group=None):
        self.engine = engine
        self.router = router
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
        log.exception("connection error")
