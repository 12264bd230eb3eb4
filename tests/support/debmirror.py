"""A local Debian mirror on 127.0.0.1 serving a subset of Debian's real, signed files.

``mirror_tree`` downloads once (cached under ``$HOSTBRIDGE_TEST_CACHE`` or
``~/.cache/hostbridge-test``) the real ``InRelease`` and ``Packages.xz`` of bookworm and
bookworm-updates and a few small real ``.deb`` files, checked here with plain hashlib against
the index (not with the code under test). ``LocalMirror`` serves that tree with HTTP Range and
If-Modified-Since, and injects the faults a test asks for: a 404, a connection dropped
mid-file, a flipped byte.
"""

from __future__ import annotations

import email.utils
import hashlib
import lzma
import os
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

UPSTREAM = "http://deb.debian.org/debian"  # Debian's own server: the one address tests may fetch from
ARCH = "amd64"
# Small packages with a small closure: tini → libc6 → libgcc-s1 → gcc-12-base; busybox-static and
# netbase depend on nothing; tzdata is in bookworm-updates too.
WANT = ("tini", "libc6", "libgcc-s1", "gcc-12-base", "busybox-static", "netbase", "tzdata")
# (suite, lay its Packages.xz out under by-hash/ only) — both layouts get exercised.
SUITES = (("bookworm", False), ("bookworm-updates", True))


def test_cache_dir():
    """The cross-run cache of downloaded test data."""
    return os.environ.get("HOSTBRIDGE_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "hostbridge-test")


def _get(session, url):
    resp = session.get(url, timeout=(15, 120))
    resp.raise_for_status()
    return resp.content


def mirror_tree(cache_root=None):
    """The directory holding ``debian/dists/…`` and ``debian/pool/…`` (downloaded once).

    Raises:
        requests.ConnectionError, requests.Timeout: Debian's server is out of reach (the caller skips).
        requests.HTTPError: a file is missing there (a failure, not a skip).
        AssertionError: a downloaded file does not match the signed index's hash.
    """
    import requests

    root = os.path.join(cache_root or test_cache_dir(), "debian-mirror-v2")  # bump when the layout changes
    if os.path.exists(os.path.join(root, ".complete")):
        return root
    tmp = root + ".tmp-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    session = requests.Session()
    debs = {}
    for suite, by_hash in SUITES:
        inrelease = _get(session, "%s/dists/%s/InRelease" % (UPSTREAM, suite))
        m = re.search(r"^ ([0-9a-f]{64}) +(\d+) main/binary-%s/Packages\.xz$" % ARCH, inrelease.decode(), re.M)
        assert m, "no Packages.xz in %s's InRelease" % suite
        sha256 = m.group(1)
        rel = "main/binary-%s/by-hash/SHA256/%s" % (ARCH, sha256)
        xz = _get(session, "%s/dists/%s/%s" % (UPSTREAM, suite, rel))
        assert hashlib.sha256(xz).hexdigest() == sha256
        dists = os.path.join(tmp, "debian", "dists", suite)
        _write(os.path.join(dists, "InRelease"), inrelease)
        _write(os.path.join(dists, rel if by_hash else "main/binary-%s/Packages.xz" % ARCH), xz)
        if by_hash:  # a small suite: its uncompressed index too (the Release lists it), for the fallback
            m = re.search(r"^ ([0-9a-f]{64}) +(\d+) main/binary-%s/Packages$" % ARCH, inrelease.decode(), re.M)
            plain = lzma.decompress(xz)
            assert hashlib.sha256(plain).hexdigest() == m.group(1)
            _write(os.path.join(dists, "main/binary-%s/Packages" % ARCH), plain)
        for para in lzma.decompress(xz).decode().split("\n\n"):
            fields = dict(re.findall(r"^(Package|Filename|SHA256): (\S+)$", para, re.M))
            if fields.get("Package") in WANT:
                debs[fields["Filename"]] = fields["SHA256"]
    for filename, sha256 in sorted(debs.items()):
        data = _get(session, "%s/%s" % (UPSTREAM, filename))
        assert hashlib.sha256(data).hexdigest() == sha256, filename
        _write(os.path.join(tmp, "debian", filename), data)
    _write(os.path.join(tmp, ".complete"), b"")
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    return root


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class LocalMirror:
    """An HTTP server on 127.0.0.1 serving ``root``; a context manager.

    Attributes:
        url: ``http://127.0.0.1:PORT/debian``.
        requests: ``(path, Range header)`` of every request, in order.
        faults: path → ``"404"``, ``("drop", n)`` (send n bytes then close, once) or
            ``("flip", offset)`` (serve the file with that byte changed).
    """

    def __init__(self, root):
        self.root = root
        self.requests = []
        self.faults = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.mirror = self
        self.url = "http://127.0.0.1:%d/debian" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Shut the server down: new connections are refused."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=10)
        self.server.server_close()

    def paths(self, prefix):
        """Requested paths starting with ``prefix``."""
        return [p for p, _ in self.requests if p.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except ConnectionError:
            pass  # the client gave up on a connection we dropped on purpose

    def do_GET(self):  # noqa: N802 (http.server's name)
        mirror = self.server.mirror
        path = urlparse(self.path).path
        with mirror.lock:
            mirror.requests.append((path, self.headers.get("Range")))
            fault = mirror.faults.get(path)
            if isinstance(fault, tuple) and fault[0] == "drop":
                del mirror.faults[path]  # once
        local = os.path.normpath(os.path.join(mirror.root, path.lstrip("/")))
        if fault == "404" or not local.startswith(mirror.root + os.sep) or not os.path.isfile(local):
            return self._reply(404, b"not found\n")
        with open(local, "rb") as f:
            data = f.read()
        if isinstance(fault, tuple) and fault[0] == "flip":
            data = data[:fault[1]] + bytes([data[fault[1]] ^ 0xFF]) + data[fault[1] + 1:]
        mtime = email.utils.formatdate(os.path.getmtime(local), usegmt=True)
        if self.headers.get("If-Modified-Since") == mtime:
            return self._reply(304, b"", {"Last-Modified": mtime})
        status, start, headers = 200, 0, {"Last-Modified": mtime, "Accept-Ranges": "bytes"}
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= len(data):
                return self._reply(416, b"", {"Content-Range": "bytes */%d" % len(data)})
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        if isinstance(fault, tuple) and fault[0] == "drop":
            self.send_response(status)
            for k, v in dict(headers, **{"Content-Length": str(len(body))}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:fault[1]])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._reply(status, body, headers)

    def _reply(self, status, body, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
