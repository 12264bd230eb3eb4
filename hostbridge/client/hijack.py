"""Hijacked connections: an HTTP request upgraded to a raw, two-way byte stream.

``POST /containers/ID/attach`` (and exec start) with ``Upgrade: tcp`` answers
``101 UPGRADED``; from then on the socket carries the container's stdio. This speaks the request
itself on a fresh socket (with transport's request writer and reply parser).
"""

from __future__ import annotations

import json
import socket

from ..errors import api_error_from
from .transport import Body, Conn, read_head, urlencode, write_request


class HijackedSocket:
    """The raw stream after the upgrade, with any bytes read past the headers kept.

    Attributes:
        sock: the socket (``shutdown_write()`` to close the container's stdin).
    """

    def __init__(self, sock, buffered=b""):
        self.sock = sock
        self._buf = buffered

    def read(self, n=32768) -> bytes:
        """Read up to ``n`` bytes; ``b""`` at end of stream."""
        if self._buf:
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        try:
            return self.sock.recv(n)
        except (ConnectionResetError, OSError):
            return b""

    def write(self, data: bytes):
        """Send bytes to the container's stdin."""
        self.sock.sendall(data)

    def shutdown_write(self):
        """Half-close: the engine closes the container's stdin."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _send(endpoint, method, path, params, body, extra_headers, timeout):
    sock = endpoint.connect(timeout=timeout)
    target = path + ("?" + urlencode(params) if params else "")
    headers = dict(extra_headers)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        write_request(sock, method, target, headers, data if data is not None else b"")
    except OSError as e:
        sock.close()
        from .endpoint import unreachable

        raise unreachable(endpoint, e)
    return sock


def _error_from(status, body):
    try:
        message = json.loads(body.decode("utf-8", "replace")).get("message") or ""
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace").strip()
    return api_error_from(status, message or "HTTP %d" % status)


class PendingResponse:
    """A request already sent on its own connection, its reply's head read, its body read later.

    ``run`` sends ``POST /containers/ID/wait`` this way *before* starting the container: the
    engine answers the head once it has registered the wait, so a container that exits at once
    still ends it (docker's client waits for that head too before its start).

    Raises:
        EngineUnreachable: the connection broke before the head.
    """

    def __init__(self, endpoint, sock):
        self.endpoint = endpoint
        self.sock = sock
        self._conn = Conn(sock)
        try:
            self._status, _, self._headers = read_head(self._conn)
        except (OSError, ValueError) as e:
            sock.close()
            raise self._unreachable(e)

    def _unreachable(self, e):
        from .endpoint import unreachable

        return unreachable(self.endpoint, e)

    def close(self):
        """Give up on the reply."""
        self.sock.close()

    def json(self):
        """Read the reply: its decoded JSON body.

        Raises:
            APIError: an error status.
            EngineUnreachable: the connection broke.
        """
        try:
            body = Body(self._conn, self._headers, "POST", self._status).read()
        except (OSError, ValueError) as e:
            raise self._unreachable(e)
        finally:
            self.sock.close()
        if self._status >= 400:
            raise _error_from(self._status, body)
        return json.loads(body.decode("utf-8")) if body.strip() else None


def send_request(endpoint, method, path, params=None, body=None) -> PendingResponse:
    """Send a request now on a fresh connection and read its reply's head; the body later with ``.json()``.

    Raises:
        EngineUnreachable: cannot connect, or no head.
    """
    return PendingResponse(endpoint, _send(endpoint, method, path, params, body, {}, None))


def hijack(endpoint, path, params=None, body=None, timeout=None) -> HijackedSocket:
    """Send ``POST path`` with ``Upgrade: tcp`` and return the upgraded stream.

    Args:
        endpoint: a ``client.endpoint.Endpoint``.
        path: the API path (``/containers/ID/attach``).
        params: query parameters.
        body: an optional JSON body (exec start).
        timeout: socket timeout; ``None`` blocks (a container may be silent for long).
    Returns:
        A ``HijackedSocket``.
    Raises:
        EngineUnreachable: cannot connect.
        APIError: the engine refused (its ``{"message"}``).
    """
    sock = _send(endpoint, "POST", path, params, body, {"Connection": "Upgrade", "Upgrade": "tcp"}, timeout)
    conn = Conn(sock)
    try:
        status, _, headers = read_head(conn)
    except (OSError, ValueError) as e:
        sock.close()
        from .endpoint import unreachable

        raise unreachable(endpoint, e)
    if status in (101, 200):
        # Old engines answer 200 and then stream; either way the socket is now raw.
        return HijackedSocket(sock, conn.buf)
    try:
        body = Body(conn, headers, "POST", status).read()
    except (OSError, ValueError):
        body = conn.buf
    finally:
        sock.close()
    raise _error_from(status, body)
