"""The userland port proxy (docker-proxy's job): host address:port → container address:port.

DNAT cannot reach a container from 127.0.0.1 (without route_localnet), so each published port
also gets a listener in the engine. It also holds the host port, so a port in use fails the
start at once. TCP is moved with ``splice(2)`` through a pipe (no copy into Python), else with
large ``recv_into`` buffers.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import threading

from ..errors import Conflict

log = logging.getLogger("hostbridge.network.proxy")

_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031
_UDP_IDLE = 90.0  # seconds a UDP flow stays open without traffic (docker-proxy's timeout)


def _family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _bind(proto, host_ip, port):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    host_ip = host_ip or "0.0.0.0"
    s = socket.socket(_family(host_ip), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if s.family == socket.AF_INET6:  # "::" takes IPv6 only: 0.0.0.0 has its own listener
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.bind((host_ip, port))
        if proto == "tcp":
            s.listen(1024)
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise Conflict("Bind for %s:%d failed: port is already allocated (choose another host port with -p)"
                           % (host_ip, port)) from None
        raise Conflict("cannot publish %s:%d/%s: %s" % (host_ip, port, proto, e.strerror)) from None
    return s


def _libc_splice():
    """``os.splice`` where Python has it (3.10+), else libc's through ctypes (GIL released too)."""
    if hasattr(os, "splice"):
        return os.splice
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.splice
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]

    def splice(src, dst, count, flags=0):
        n = fn(src, None, dst, None, count, flags)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return n
    return splice


_splice = _libc_splice()
_SPLICE_F_MOVE = 1


def _pump_splice(src, dst):
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass
        sfd, dfd = src.fileno(), dst.fileno()
        while True:
            n = _splice(sfd, w, _CHUNK, flags=_SPLICE_F_MOVE)
            if n == 0:
                break
            while n:
                n -= _splice(r, dfd, n, flags=_SPLICE_F_MOVE)
    finally:
        os.close(r)
        os.close(w)


def _pump_copy(src, dst):
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = src.recv_into(buf)
        if n == 0:
            break
        dst.sendall(view[:n])


_pump = _pump_splice if _splice else _pump_copy


def _relay(src, dst, done):
    try:
        _pump(src, dst)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        if done():
            src.close()
            dst.close()


class Proxy:
    """One published port. ``start()`` serves in daemon threads; ``close()`` stops and frees it.

    Raises (constructor):
        Conflict: the host port cannot be bound (in use, bad address).
    """

    def __init__(self, proto, host_ip, host_port, target_ip, target_port):
        self.proto = proto
        self.target = (target_ip, target_port)
        self.sock = _bind(proto, host_ip, host_port)
        self.host_ip = host_ip or "0.0.0.0"
        self.host_port = self.sock.getsockname()[1]
        self.closed = False
        self._conns = set()
        self._flows = {}
        self._lock = threading.Lock()

    def start(self):
        fn = self._serve_tcp if self.proto == "tcp" else self._serve_udp
        threading.Thread(target=fn, name="proxy-%s-%d" % (self.proto, self.host_port), daemon=True).start()
        return self

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()/recvfrom()
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _track(self, *socks):
        with self._lock:
            self._conns.update(socks)

    def _serve_tcp(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                if self.closed:
                    return
                continue
            threading.Thread(target=self._handle_tcp, args=(client,), daemon=True).start()

    def _handle_tcp(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as e:
            log.info("proxy %d: cannot reach %s:%d: %s", self.host_port, self.target[0], self.target[1], e)
            client.close()
            return
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(client, upstream)
        left = [2]
        lock = threading.Lock()

        def done():
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                with self._lock:
                    self._conns.discard(client)
                    self._conns.discard(upstream)
            return last

        threading.Thread(target=_relay, args=(upstream, client, done), daemon=True).start()
        _relay(client, upstream, done)

    def _serve_udp(self):
        flows = self._flows = {}
        while not self.closed:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                if self.closed:
                    break
                continue
            if self.closed:
                break
            with self._lock:
                up = flows.get(peer)
            if up is None:
                up = socket.socket(_family(self.target[0]), socket.SOCK_DGRAM)
                up.connect(self.target)
                up.settimeout(_UDP_IDLE)
                with self._lock:
                    flows[peer] = up
                    self._conns.add(up)
                threading.Thread(target=self._udp_replies, args=(up, peer), daemon=True).start()
            try:
                up.send(data)
            except OSError:
                pass
        with self._lock:
            ups, flows = list(flows.values()), {}
        for up in ups:
            up.close()

    def _udp_replies(self, up, peer):
        try:
            while not self.closed:
                data = up.recv(65535)
                if not data and self.closed:
                    break
                self.sock.sendto(data, peer)
        except OSError:
            pass
        finally:
            with self._lock:  # an idle flow ends; the next datagram from that peer opens a new one
                self._conns.discard(up)
                if self._flows.get(peer) is up:
                    del self._flows[peer]
            up.close()
