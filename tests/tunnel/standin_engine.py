"""A stand-in for the engine's unix-socket HTTP server, for tunnel tests only.

The real engine (hostbridge/guest daemon) is written in parallel; until it lands these tests
need *some* HTTP-over-unix-socket server on the far side. This one answers the few endpoints
the tunnel itself uses (/_ping, /version, /containers/json, /containers/ID/json, /events) plus
/stream (a slow endless body, to cut mid-stream) and POST /sink (bulk uploads, for the bench). It knows nothing of containers: a test
"starts" one by calling ``start_container`` which records it and emits the event.
"""

from __future__ import annotations

import json
import os
import queue
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

from hostbridge.tunnel.localhttp import request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        eng = self.server.engine
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        if path == "/_ping":
            self.send_response(200)
            self.send_header("Api-Version", "1.44")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        elif path == "/version":
            self._json({"Version": eng.version, "ApiVersion": "1.44"})
        elif path == "/containers/json":
            self._json([{"Id": cid, "Ports": [{"PrivatePort": p, "PublicPort": p, "Type": "tcp", "IP": "0.0.0.0"}
                                              for p in ports]} for cid, ports in eng.containers.items()])
        elif path.startswith("/containers/") and path.endswith("/json"):
            cid = path.split("/")[2]
            if cid not in eng.containers:
                return self._json({"message": "No such container: " + cid}, 404)
            self._json({"Id": cid, "NetworkSettings": {"Ports": {
                "%d/tcp" % p: [{"HostIp": "0.0.0.0", "HostPort": str(p)}] for p in eng.containers[cid]}}})
        elif path == "/events":
            self._stream(eng.subscribe())
        elif path == "/stream":
            self._slow_stream()
        else:
            self._json({"message": "page not found"}, 404)

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/sink":  # bulk upload target for bench/tunnel_ping.py
            return self._json({"message": "page not found"}, 404)
        left, n = int(self.headers.get("Content-Length", "0")), 0
        while left > 0:
            data = self.rfile.read(min(left, 1 << 20))
            if not data:
                break
            left -= len(data)
            n += len(data)
        self._json({"bytes": n})

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, q):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            while not self.server.closing:
                try:
                    ev = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._chunk(json.dumps(ev).encode() + b"\n")
        except OSError:
            pass
        finally:
            self.server.engine.unsubscribe(q)
        self.close_connection = True

    def _slow_stream(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i in range(600):  # bounded: 30 s at most
                if self.server.closing:
                    break
                self._chunk(b"line %d\n" % i)
                time.sleep(0.05)
        except OSError:
            pass
        self.close_connection = True


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    closing = False


class StandinEngine:
    """Serve the stand-in on ``path`` from a thread of the test process."""

    def __init__(self, path: str, version: str = "0.1.0"):
        self.path, self.version = path, version
        self.containers = {}
        self._subs = []
        self.subscriptions = 0  # /events requests ever made
        self._lock = threading.Lock()
        if os.path.exists(path):
            os.unlink(path)
        self.server = _Server(path, _Handler)
        self.server.engine = self
        os.chmod(path, 0o660)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def subscribe(self):
        q = queue.Queue()
        with self._lock:
            self._subs.append(q)
            self.subscriptions += 1
        return q

    def unsubscribe(self, q):
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def emit(self, cid: str, action: str):
        ev = {"Type": "container", "Action": action, "status": action, "id": cid,
              "Actor": {"ID": cid, "Attributes": {}}, "time": int(time.time())}
        with self._lock:
            for q in self._subs:
                q.put(ev)

    def start_container(self, cid: str, ports: list):
        self.containers[cid] = list(ports)
        self.emit(cid, "start")

    def stop_container(self, cid: str):
        self.containers.pop(cid, None)
        self.emit(cid, "die")

    def close(self):
        self.server.closing = True
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def get(endpoint: str, path: str, timeout: float = 10) -> tuple:
    """GET ``path``; returns (status, body bytes)."""
    return request(endpoint, "GET", path, timeout)
