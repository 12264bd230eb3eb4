"""A requests transport for the engine's unix socket (``http+unix://``).

requests speaks TCP only; this adapter hands it connections that dial a unix socket instead.
TCP endpoints (``http://127.0.0.1:N``) use requests' own adapter.
"""

from __future__ import annotations

import socket

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool


class UnixHTTPConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection over a unix socket."""

    def __init__(self, socket_path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path
        self.timeout = timeout

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    """A connection pool whose connections dial ``socket_path``."""

    def __init__(self, socket_path, timeout=60, maxsize=10):
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self.socket_path = socket_path
        self.timeout = timeout

    def _new_conn(self):
        return UnixHTTPConnection(self.socket_path, self.timeout)


class UnixHTTPAdapter(requests.adapters.HTTPAdapter):
    """Mount on ``http+unix://`` to send every request to one unix socket.

    Args:
        socket_path: the engine's socket.
        timeout: seconds for connect and each read (``None``: no timeout).
    """

    def __init__(self, socket_path, timeout=60, max_pool_size=10):
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_pool_size = max_pool_size
        self._pool = None
        super().__init__()

    def get_connection(self, url, proxies=None):
        if self._pool is None:
            self._pool = UnixHTTPConnectionPool(self.socket_path, self.timeout, self.max_pool_size)
        return self._pool

    # requests >= 2.32.2 calls this one instead of get_connection.
    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.get_connection(request.url, proxies)

    def request_url(self, request, proxies):
        # A unix socket has no host to proxy to: send the path only.
        return request.path_url

    def close(self):
        super().close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
