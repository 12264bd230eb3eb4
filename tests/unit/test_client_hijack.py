"""hostbridge.client.hijack over a real socket pair: upgrade, error replies, a reply read later."""

import socket
import threading

import pytest

from hostbridge.client import hijack
from hostbridge.client.endpoint import parse_endpoint
from hostbridge.errors import Conflict, NotFound


class Server:
    """A one-connection HTTP peer on a unix socket that answers with canned bytes."""

    def __init__(self, path, reply, gate=None):
        self.path, self.reply, self.request = path, reply, b""
        self.gate = gate  # a threading.Event the reply waits for, when given
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            head, _, body = self.request.partition(b"\r\n\r\n")
            length = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
            while len(body) < length:
                body += conn.recv(4096)
            self.request = head + b"\r\n\r\n" + body
            if self.gate is not None:
                self.gate.wait(10)
            for part in self.reply:
                conn.sendall(part)
            if self.reply and self.reply[0].startswith(b"HTTP/1.1 101"):
                data = conn.recv(4096)  # echo one message back, then close
                conn.sendall(b"echo:" + data)
        self.listener.close()


@pytest.fixture
def endpoint(tmp_path):
    return parse_endpoint("unix://%s" % (tmp_path / "s.sock"))


def test_upgrade_gives_a_raw_stream_with_buffered_bytes(endpoint):
    srv = Server(endpoint.path, [b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly"])
    sock = hijack.hijack(endpoint, "/containers/abc/attach", {"stream": "1"})
    assert sock.read() == b"early"
    sock.write(b"hello")
    assert sock.read() == b"echo:hello"
    assert sock.read() == b""
    sock.close()
    srv.thread.join(5)
    assert srv.request.startswith(b"POST /containers/abc/attach?stream=1 HTTP/1.1\r\n")
    assert b"Upgrade: tcp\r\n" in srv.request


def test_error_reply_becomes_the_api_error(endpoint):
    body = b'{"message":"No such container: abc"}'
    Server(endpoint.path, [b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body), body])
    with pytest.raises(NotFound, match="No such container: abc"):
        hijack.hijack(endpoint, "/containers/abc/attach")


def test_pending_reply_read_later_chunked(endpoint):
    srv = Server(endpoint.path, [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                 b"5\r\n{\"Sta\r\n", b"10\r\ntusCode\":3,\"x\":1\r\n", b"1\r\n}\r\n0\r\n\r\n"])
    pending = hijack.send_request(endpoint, "POST", "/containers/abc/wait", {"condition": "next-exit"})
    assert pending.json() == {"StatusCode": 3, "x": 1}
    srv.thread.join(5)
    assert srv.request.startswith(b"POST /containers/abc/wait?condition=next-exit HTTP/1.1\r\n")


def test_pending_request_returns_once_its_head_arrived(endpoint):
    """run starts the container right after wait_later: the engine must have registered the
    wait by then, which it tells by answering the head (as docker's client waits for it)."""
    gate, returned = threading.Event(), threading.Event()
    Server(endpoint.path, [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                           b"11\r\n{\"StatusCode\": 3}\r\n0\r\n\r\n"], gate=gate)
    got = []
    t = threading.Thread(target=lambda: (got.append(hijack.send_request(endpoint, "POST", "/containers/abc/wait")),
                                         returned.set()), daemon=True)
    t.start()
    assert not returned.wait(0.5)  # the request is out, the head is not: still sending
    gate.set()
    assert returned.wait(10)
    assert got[0].json() == {"StatusCode": 3}


def test_pending_error_reply(endpoint):
    body = b'{"message":"container is not running"}'
    Server(endpoint.path, [b"HTTP/1.1 409 Conflict\r\nContent-Length: %d\r\n\r\n" % len(body), body])
    with pytest.raises(Conflict, match="not running"):
        hijack.send_request(endpoint, "POST", "/exec/x/start", body={"Detach": False}).json()
