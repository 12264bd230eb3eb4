"""HTTP for the archive client: small GETs, and verified, resumable downloads into a cache.

A download goes to ``<dest>.part``, resumes it with an HTTP Range request (after a dropped
connection, or in the next run after Ctrl-C), is checked for size and sha256, and only then renamed
to ``dest``: a ``.part`` is never taken for a finished file.
"""

from __future__ import annotations

import errno
import hashlib
import os

import requests

from hostbridge.errors import ArchiveError, ArchiveUnreachable

CHUNK = 1 << 16
TIMEOUT = (15, 60)  # connect, read (seconds)
# Attempts per file when a mirror drops the connection after sending some bytes.
ATTEMPTS = 4
# The largest file ``get`` takes (Debian's largest InRelease is ~150 KB).
SMALL_LIMIT = 16 << 20


class HTTP:
    """A requests session with the archive client's errors.

    Args:
        session: a ``requests.Session`` (proxies and the like come from the environment, as
            requests does); default a new one.
        timeout: requests' ``(connect, read)`` timeout.
    """

    def __init__(self, session=None, timeout=TIMEOUT):
        self.session = session or requests.Session()
        self.timeout = timeout

    def get(self, url, headers=None, allow=(200,), limit=SMALL_LIMIT):
        """GET a small file (an InRelease), into memory.

        Args:
            url: the URL.
            headers: extra request headers (If-Modified-Since…).
            allow: statuses returned rather than raised.
            limit: the most bytes accepted (a hostile mirror cannot fill the memory).
        Returns:
            ``(status, body bytes, response headers)``.
        Raises:
            ArchiveUnreachable: no connection.
            ArchiveError: another status than ``allow``, larger than ``limit``, or the transfer broke.
        """
        try:
            with self.session.get(url, headers=headers or {}, timeout=self.timeout, stream=True) as resp:
                if resp.status_code not in allow:
                    raise status_error(url, resp)
                body = bytearray()
                for chunk in resp.iter_content(CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise ArchiveError("%s is larger than %d bytes: not what it should be" % (url, limit),
                                           url=url, hint="check the mirror URL")
                return resp.status_code, bytes(body), resp.headers
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ArchiveUnreachable("cannot reach %s: %s" % (url, _reason(e)), url=url,
                                     hint="check the mirror and your network, or its proxy settings") from e
        except requests.RequestException as e:
            raise ArchiveError("downloading %s failed: %s" % (url, _reason(e)), url=url) from e

    def download(self, url, dest, size, sha256, on_bytes=None):
        """Download ``url`` to ``dest`` unless it is there, checking its size and sha256.

        Args:
            url: the URL.
            dest: the final path; ``dest + ".part"`` holds a partial download.
            size: the expected size in bytes.
            sha256: the expected sha256 (hex).
            on_bytes: called with the number of new bytes as they arrive (and with the size of
                what a resumed ``.part`` already holds).
        Returns:
            ``dest``.
        Raises:
            ArchiveUnreachable: no connection at all.
            ArchiveError: an HTTP error status, a size or hash mismatch (nothing is kept), the
                mirror kept dropping the connection (the ``.part`` is kept to resume), disk full.
        """
        part = dest + ".part"
        have = _size(part)
        if have > size:
            _remove(part)
            have = 0
        if have and on_bytes:
            on_bytes(have)
        last = None
        for _ in range(ATTEMPTS):
            if have == size:
                break
            before = have
            try:
                have = self._transfer(url, part, have, size, on_bytes)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                have, last = _size(part), e
                if have == before and isinstance(e, requests.ConnectionError) and before == 0:
                    raise ArchiveUnreachable("cannot reach %s: %s" % (url, _reason(e)), url=url,
                                             hint="check the mirror and your network") from e
                continue
            except requests.RequestException as e:
                raise ArchiveError("downloading %s failed: %s" % (url, _reason(e)), url=url) from e
        if have != size:
            raise ArchiveError("downloading %s broke off at %d of %d bytes: %s"
                               % (url, have, size, _reason(last) if last else "short read"), url=url,
                               hint="run again to resume it")
        got = file_sha256(part)
        if got != sha256:
            _remove(part)
            raise ArchiveError("%s has sha256 %s, the signed index says %s" % (url, got, sha256), url=url,
                               hint="the mirror serves a corrupt or altered file; try another mirror")
        os.replace(part, dest)
        return dest

    def _transfer(self, url, part, have, size, on_bytes):
        headers = {"Range": "bytes=%d-" % have} if have else {}
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            if resp.status_code == 416 or (have and resp.status_code == 200):
                # The server will not resume: start over.
                if on_bytes and have:
                    on_bytes(-have)
                have = 0
                if resp.status_code == 416:
                    _remove(part)
                    return 0
            elif resp.status_code == 206:
                start = resp.headers.get("Content-Range", "").replace("bytes ", "").split("-")[0]
                if start != str(have):
                    raise ArchiveError("%s answered a range request with the wrong range (%s)"
                                       % (url, resp.headers.get("Content-Range")), url=url)
            elif resp.status_code != 200:
                raise status_error(url, resp)
            try:
                with open(part, "ab" if have else "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        if have + len(chunk) > size:
                            out.truncate(0)
                            raise ArchiveError("%s is larger than the %d bytes the signed index says"
                                               % (url, size), url=url)
                        out.write(chunk)
                        have += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
            except requests.RequestException:
                raise  # an OSError too, but the transfer's, not the disk's: the caller resumes
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise ArchiveError("disk full writing %s (downloading %s)" % (part, url), url=url,
                                       hint="free some space and run again to resume") from e
                raise ArchiveError("cannot write %s: %s" % (part, e.strerror or e), url=url) from e
        return have


def status_error(url, resp):
    """The ArchiveError for an HTTP error status."""
    return ArchiveError("%s: HTTP %d %s" % (url, resp.status_code, resp.reason or ""), url=url,
                        status=resp.status_code)


def _reason(e):
    # requests nests urllib3's reason several levels deep; the innermost line says it best.
    text = str(e)
    return text.split("Caused by ")[-1].strip("()'\" ") if "Caused by" in text else text


def file_sha256(path):
    """The sha256 (hex) of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
