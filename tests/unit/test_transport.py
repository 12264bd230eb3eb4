"""The host client's HTTP/1.1 over sockets, against a scripted peer on a real unix socket."""

import os
import socket
import threading

import pytest

from hostbridge.client.endpoint import parse_endpoint
from hostbridge.client.transport import Transport


@pytest.fixture
def peer(tmp_path):
    """A unix-socket server answering each request with the next scripted reply; records requests."""
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    state = {"replies": [], "requests": [], "conns": 0}

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            state["conns"] += 1
            buf = b""
            with c:
                while state["replies"]:
                    while b"\r\n\r\n" not in buf:
                        d = c.recv(65536)
                        if not d:
                            break
                        buf += d
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if b"chunked" in head.lower():
                        while not buf.endswith(b"0\r\n\r\n"):
                            buf += c.recv(65536)
                        head += b"\r\n\r\n" + buf
                        buf = b""
                    state["requests"].append(head)
                    reply = state["replies"].pop(0)
                    c.sendall(reply)
                    if b"Connection: close" in reply:
                        break

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, state
    srv.close()
    os.unlink(path)


def test_keep_alive_content_length_and_chunked_replies(peer):
    path, state = peer
    state["replies"] += [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
    ]
    t = Transport(parse_endpoint("unix://" + path), timeout=5)
    r = t.request("GET", "/_ping")
    assert (r.status_code, r.text, r.headers.get("Content-Type")) == (200, "OK", "text/plain")
    assert t.request("GET", "/x").json() == [1, 2]
    assert state["conns"] == 1  # the second request reused the connection
    t.close()


def test_streamed_reply_and_chunked_upload(peer):
    path, state = peer
    state["replies"].append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    t = Transport(parse_endpoint("unix://" + path), timeout=5)
    r = t.request("POST", "/images/load", body=iter([b"abc", b"defg"]), stream=True)
    assert b"".join(r.iter_content()) == b"hello world"
    sent = state["requests"][0]
    assert b"Transfer-Encoding: chunked" in sent and b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n" in sent


def test_close_delimited_reply_and_a_cut_reply(peer):
    path, state = peer
    state["replies"] += [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"]
    t = Transport(parse_endpoint("unix://" + path), timeout=5)
    assert t.request("GET", "/a").content == b"all of it"
    state["replies"] += [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort"]
    with pytest.raises(ConnectionError):
        t.request("GET", "/b")
