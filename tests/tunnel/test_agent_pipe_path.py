"""The agent's named-pipe path (accept with a timeout, a thread per direction), run against the
real sshd and the real engine. Windows pipes cannot exist here, so the listener is a stand-in."""

import queue
import socket
import threading

import pytest

from hostbridge.tunnel import control
from hostbridge.tunnel.agent import Agent

pytestmark = pytest.mark.root


class _Stream:
    """A connected end that is not a ``socket.socket`` (as ``npipe.PipeStream`` is not)."""

    def __init__(self, sock):
        self.sock = sock

    def recv(self, n):
        return self.sock.recv(n)

    def sendall(self, data):
        self.sock.sendall(data)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        self.sock.close()


class StandinPipeListener:
    """Stands in for ``npipe.PipeListener`` (Windows only): ``accept(timeout)`` hands out the far
    ends of socketpairs whose near ends ``connect()`` returns."""

    def __init__(self):
        self.waiting = queue.Queue()

    def connect(self):
        ours, theirs = socket.socketpair()
        self.waiting.put(_Stream(theirs))
        return ours

    def accept(self, timeout=None):
        try:
            return self.waiting.get(timeout=timeout)
        except queue.Empty:
            raise socket.timeout("no client") from None

    def close(self):
        pass


def _exchange(sock, request):
    sock.settimeout(20)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)  # half-close, as the docker CLI's CloseWrite on a pipe
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_requests_cross_the_pipe_path_of_the_agent(machine, far_engine):
    agent = Agent(machine, control.read_json(machine.tunnel_json))
    agent.conn = agent.connect()
    agent.listener = StandinPipeListener()
    server = threading.Thread(target=agent.serve, daemon=True)
    server.start()
    try:
        for _ in range(3):  # one channel per connection, each closed after its answer
            reply = _exchange(agent.listener.connect(), b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"OK"), reply
        reply = _exchange(agent.listener.connect(), b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b'"ApiVersion": "1.44"' in reply
        assert agent.status["connections"] == 4 and agent.status["errors"] == 0
    finally:
        agent.stop()
        server.join(5)
        agent.conn.close()
    assert not server.is_alive()
