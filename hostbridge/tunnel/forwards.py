"""Automatic port forwarding: published container ports appear on host 127.0.0.1.

Event-driven: the agent subscribes to the engine's ``/events`` (type=container, events
start/die/stop) through the tunnel; on ``start`` it inspects the container and listens on
127.0.0.1:HostPort for each published TCP port, forwarding to the far side's
127.0.0.1:HostPort over direct-tcpip; on ``die``/``stop`` the listeners go. A port already in use
on the host is logged and shown in the status, never fatal.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import socket
import threading
import urllib.parse

from .channels import pump

log = logging.getLogger("hostbridge.tunnel.forwards")

EVENT_FILTERS = json.dumps({"type": ["container"], "event": ["start", "die", "stop"]})


def engine_request(chan, method: str, path: str) -> http.client.HTTPResponse:
    """Send one HTTP request over an engine channel; returns the response (headers read)."""
    chan.sendall(("%s %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n" % (method, path)).encode())
    resp = http.client.HTTPResponse(chan)
    resp.begin()
    return resp


def json_lines(resp: http.client.HTTPResponse):
    """Yield the JSON objects of a streamed body, one per line, as they arrive.

    Reads the chunked framing itself: ``HTTPResponse.readline`` needs ``peek()``, which
    paramiko's channel files lack.
    """
    fp, buf = resp.fp, b""
    chunked = resp.chunked
    while True:
        if chunked:
            size_line = fp.readline()
            if not size_line:
                return
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                return
            data = fp.read(size)
            fp.readline()  # the CRLF after each chunk
        else:
            data = fp.readline()
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def published_tcp_ports(inspect: dict) -> list:
    """Host ports to forward from a container's inspect (``NetworkSettings.Ports``).

    Only TCP bindings reachable on the far side's loopback (HostIp empty, 0.0.0.0, ::,
    127.0.0.1) count: a binding to another address is not reachable as 127.0.0.1 there.
    """
    ports = ((inspect.get("NetworkSettings") or {}).get("Ports")) or {}
    out = []
    for spec, bindings in sorted(ports.items()):
        if not spec.endswith("/tcp") or not bindings:
            continue
        for b in bindings:
            if b.get("HostIp", "") in ("", "0.0.0.0", "::", "127.0.0.1") and str(b.get("HostPort", "")).isdigit():
                port = int(b["HostPort"])
                if port not in out:
                    out.append(port)
    return out


class Forward:
    """One host listener on 127.0.0.1:``port`` forwarding to the far side's same port."""

    def __init__(self, agent, port: int):
        self.agent, self.port = agent, port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))  # OSError (EADDRINUSE) is the caller's to report
        self.sock.listen(64)
        self.closed = False
        threading.Thread(target=self._accept, name="fwd-%d" % port, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        try:
            chan = self.agent.open_tcp(self.port)
        except Exception as e:
            log.warning("port %d: cannot reach the far side's 127.0.0.1:%d: %s", self.port, self.port, e)
            client.close()
            return
        pump(client, chan)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class PortForwarder:
    """Keeps host listeners in step with the engine's running containers."""

    def __init__(self, agent):
        self.agent = agent
        self.by_container = {}  # container id -> [ports]
        self.forwards = {}  # port -> Forward
        self.clashes = {}  # port -> message
        self.lock = threading.Lock()

    # -- bookkeeping ----------------------------------------------------------------------
    def add(self, container_id: str, ports: list) -> None:
        """Forward ``ports`` for a started container."""
        with self.lock:
            self.by_container[container_id] = list(ports)
            for port in ports:
                if port in self.forwards:
                    continue
                try:
                    self.forwards[port] = Forward(self.agent, port)
                    self.clashes.pop(port, None)
                    log.info("forwarding 127.0.0.1:%d for container %s", port, container_id[:12])
                except OSError as e:
                    why = "in use on this host" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
                    self.clashes[port] = "127.0.0.1:%d %s (container %s)" % (port, why, container_id[:12])
                    log.warning("cannot forward port %d: %s", port, self.clashes[port])
        self._publish()

    def remove(self, container_id: str) -> None:
        """Stop forwarding a stopped container's ports (unless another container owns one)."""
        with self.lock:
            ports = self.by_container.pop(container_id, [])
            still = {p for ps in self.by_container.values() for p in ps}
            for port in ports:
                self.clashes.pop(port, None)
                if port in still or port not in self.forwards:
                    continue
                self.forwards.pop(port).close()
                log.info("stopped forwarding port %d (container %s)", port, container_id[:12])
        self._publish()

    def close_all(self) -> None:
        """Drop every listener (agent shutdown)."""
        with self.lock:
            for f in self.forwards.values():
                f.close()
            self.forwards.clear()
            self.by_container.clear()

    def _publish(self):
        self.agent.set_status(forwards=sorted(self.forwards), forward_clashes=sorted(self.clashes.values()))

    # -- engine side ----------------------------------------------------------------------
    def _get_json(self, path: str):
        resp = engine_request(self.agent.open_engine(), "GET", path)
        body = resp.read()
        if resp.status != 200:
            raise OSError("GET %s: HTTP %d" % (path, resp.status))
        return json.loads(body)

    def sync(self) -> None:
        """Match listeners to the currently running containers (after (re)subscribing)."""
        running = {c["Id"]: c for c in self._get_json("/containers/json")}
        for cid in list(self.by_container):
            if cid not in running:
                self.remove(cid)
        for cid, c in running.items():
            ports = sorted({p["PublicPort"] for p in c.get("Ports") or []
                            if p.get("Type", "tcp") == "tcp" and p.get("PublicPort")
                            and p.get("IP", "") in ("", "0.0.0.0", "::", "127.0.0.1")})
            if ports:
                self.add(cid, ports)

    def on_event(self, ev: dict) -> None:
        """Apply one container event."""
        cid = ev.get("id") or (ev.get("Actor") or {}).get("ID")
        action = ev.get("Action") or ev.get("status") or ""
        if not cid:
            return
        if action == "start":
            ports = published_tcp_ports(self._get_json("/containers/%s/json" % cid))
            if ports:
                self.add(cid, ports)
        elif action in ("die", "stop"):
            self.remove(cid)

    def run(self) -> None:
        """Subscribe to the engine's events and follow them, resubscribing after failures."""
        delay = 0.2
        while not self.agent.stopping.is_set():
            try:
                resp = engine_request(self.agent.open_engine(), "GET",
                                      "/events?filters=" + urllib.parse.quote(EVENT_FILTERS))
                if resp.status != 200:
                    raise OSError("GET /events: HTTP %d" % resp.status)
                self.sync()
                delay = 0.2
                for event in json_lines(resp):
                    if self.agent.stopping.is_set():
                        break
                    self.on_event(event)
            except Exception as e:  # the engine may not be up yet, or the link dropped: retry
                log.info("events subscription: %s: %s; retrying in %.1f s", type(e).__name__, e, delay)
            self.agent.stopping.wait(delay)
            delay = min(delay * 2, 5)
