"""A minimal HTTP client for the agent's local endpoint (unix://, npipe:// or tcp://127.0.0.1).

Just enough for set-up checks (``/_ping``, ``/version``, listing containers before an
upgrade) without paramiko or requests; commands use ``hostbridge.client``.
"""

from __future__ import annotations

import http.client
import json
import socket

from ..errors import EngineUnreachable


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket."""

    def __init__(self, path: str, timeout: float = 10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class PipeHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Windows named pipe (``tunnel/npipe.py``)."""

    def __init__(self, path: str, timeout: float = 10):
        super().__init__("localhost", timeout=timeout)
        self.pipe_path = path

    def connect(self):
        from . import npipe

        self.sock = npipe.connect(self.pipe_path, self.timeout)


def connection(endpoint: str, timeout: float = 10) -> http.client.HTTPConnection:
    """An HTTP connection to ``unix:///path``, ``npipe:////./pipe/NAME`` or ``tcp://HOST:PORT``."""
    if endpoint.startswith("unix://"):
        return UnixHTTPConnection(endpoint[len("unix://"):], timeout)
    if endpoint.startswith("npipe:"):
        from ..hostos import pipe_path_from_url

        return PipeHTTPConnection(pipe_path_from_url(endpoint), timeout)
    host, port = endpoint.split("://", 1)[-1].rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def request(endpoint: str, method: str, path: str, timeout: float = 10) -> tuple:
    """One request; returns (status, body bytes).

    Raises:
        EngineUnreachable: nothing answered at the endpoint.
    """
    c = connection(endpoint, timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        raise EngineUnreachable("nothing answers at %s (%s): check `hostbridge tunnel status`" % (endpoint, e)) from None
    finally:
        c.close()


def get_json(endpoint: str, path: str, timeout: float = 10):
    """GET ``path`` and decode its JSON body.

    Raises:
        EngineUnreachable: no answer, or a non-200 status (its ``message`` included).
    """
    status, body = request(endpoint, "GET", path, timeout)
    if status != 200:
        try:
            msg = json.loads(body).get("message", "")
        except ValueError:
            msg = body[:200].decode(errors="replace")
        raise EngineUnreachable("GET %s through %s answered %d: %s" % (path, endpoint, status, msg))
    return json.loads(body)


def ping(endpoint: str, timeout: float = 10) -> bool:
    """Whether ``GET /_ping`` answers 200 OK."""
    try:
        status, body = request(endpoint, "GET", "/_ping", timeout)
    except EngineUnreachable:
        return False
    return status == 200 and body.strip() == b"OK"
