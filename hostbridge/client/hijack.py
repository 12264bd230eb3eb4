"""Hijacked connections: an HTTP request upgraded to a raw, two-way byte stream.

``POST /containers/ID/attach`` (and exec start) with ``Upgrade: tcp`` answers
``101 UPGRADED``; from then on the socket carries the container's stdio. requests cannot hand
over its socket cleanly, so this speaks the request itself on a fresh socket.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlencode

from ..errors import api_error_from


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


def _read_head(sock, limit=65536):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
        if len(buf) > limit:
            raise ValueError("response headers too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _parse_head(head):
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def _send(endpoint, method, path, params, body, extra_headers, timeout):
    sock = endpoint.connect(timeout=timeout)
    target = path + ("?" + urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else b""
    request = (
        "%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hostbridge\r\n%s"
        "Content-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (method, target, extra_headers, "application/json" if body is not None else "text/plain", len(data))
    ).encode("latin-1") + data
    try:
        sock.sendall(request)
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


def _read_body(sock, headers, rest):
    def more():
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed inside the reply")
        return data

    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            while b"\r\n" not in rest:
                rest += more()
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return out
            while len(rest) < size + 2:
                rest += more()
            out, rest = out + rest[:size], rest[size + 2:]
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += more()
        return rest[:length]
    while True:
        data = sock.recv(65536)
        if not data:
            return rest
        rest += data


class PendingResponse:
    """A request already sent on its own connection whose reply is read later.

    ``run`` sends ``POST /containers/ID/wait`` this way *before* starting the container, so the
    engine has registered the wait when the container exits (docker's CLI does the same).
    """

    def __init__(self, endpoint, sock):
        self.endpoint = endpoint
        self.sock = sock

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
            head, rest = _read_head(self.sock)
            status, headers = _parse_head(head)
            if not status:
                raise OSError("connection closed before a reply")
            body = _read_body(self.sock, headers, rest)
        except (OSError, ValueError) as e:
            from .endpoint import unreachable

            raise unreachable(self.endpoint, e)
        finally:
            self.sock.close()
        if status >= 400:
            raise _error_from(status, body)
        return json.loads(body.decode("utf-8")) if body.strip() else None


def send_request(endpoint, method, path, params=None, body=None) -> PendingResponse:
    """Send a request now on a fresh connection; read its reply later with ``.json()``.

    Raises:
        EngineUnreachable: cannot connect.
    """
    return PendingResponse(endpoint, _send(endpoint, method, path, params, body, "", None))


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
    sock = _send(endpoint, "POST", path, params, body, "Connection: Upgrade\r\nUpgrade: tcp\r\n", timeout)
    try:
        head, rest = _read_head(sock)
    except (OSError, ValueError) as e:
        sock.close()
        from .endpoint import unreachable

        raise unreachable(endpoint, e)
    status, headers = _parse_head(head)
    if status in (101, 200):
        # Old engines answer 200 and then stream; either way the socket is now raw.
        return HijackedSocket(sock, rest)
    try:
        body = _read_body(sock, headers, rest)
    except (OSError, ValueError):
        body = rest
    finally:
        sock.close()
    raise _error_from(status, body)
