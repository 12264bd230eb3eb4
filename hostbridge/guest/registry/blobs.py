"""Blob downloads: streamed to disk, sha256-verified, resumed with Range after a broken stream.

Files in the download dir: ``<hex>.partial`` while a blob is in flight (kept only while the
registry is unreachable, so a retry resumes it), ``<hex>`` once its digest and size are verified.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import threading
import time

from .errors import BlobVerificationError, RegistryError, RegistryUnavailable
from .manifest import DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD

CHUNK = 1 << 20


class Cancelled(Exception):
    """Another layer of the same pull failed: stop this one."""


def blob_path(download_dir: str, digest: str) -> str:
    return os.path.join(download_dir, digest.split(":", 1)[1])


def partial_path(download_dir: str, digest: str) -> str:
    return blob_path(download_dir, digest) + ".partial"


def file_digest(path: str) -> str:
    """``sha256:…`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def download(client, repo, desc, download_dir, scopes, on_progress=None, cancel: threading.Event = None) -> str:
    """Download one blob to ``download_dir``, verified; reuse a verified file already there.

    Args:
        client: a RegistryClient.
        repo: repository path.
        desc: a manifest Descriptor (digest, size).
        download_dir: where blobs go (created if missing).
        scopes: token scopes.
        on_progress: called with (current_bytes, total_bytes) as data arrives.
        cancel: set by the caller to stop early (raises Cancelled).
    Returns:
        The verified file's path.
    Raises:
        BlobVerificationError: digest or size mismatch, or the stream kept breaking short
            (the partial file is removed).
        RegistryUnavailable: the registry went away (the partial file is kept for a resume).
        RegistryError: other registry errors.
    """
    os.makedirs(download_dir, exist_ok=True)
    final = blob_path(download_dir, desc.digest)
    if os.path.exists(final) and os.path.getsize(final) == desc.size:
        if on_progress:
            on_progress(desc.size, desc.size)
        return final
    part = partial_path(download_dir, desc.digest)
    what = "blob %s of %s/%s" % (desc.digest, client.domain, repo)
    cfg = client.config
    attempt = 0
    last_error = None
    hashed = _Hashed()
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        try:
            _fetch_into(client, repo, desc, part, scopes, what, on_progress, cancel, hashed)
            break
        except (OSError, http.client.HTTPException) as e:
            last_error = e  # the stream broke: resume from what is on disk
        except (RegistryUnavailable, Cancelled):
            raise  # keep the partial file: a later pull resumes it
        except BaseException:
            _unlink(part)
            raise
        if attempt >= cfg.retries:
            _unlink(part)
            raise BlobVerificationError("%s: download kept breaking off (%s) — the registry or a proxy "
                                        "truncates it; retry later or check the registry"
                                        % (what, last_error or "short read"), registry=client.domain)
        time.sleep(min(cfg.backoff * (2 ** attempt), cfg.max_backoff))
        attempt += 1
    size = os.path.getsize(part)
    if size != desc.size:
        _unlink(part)
        raise BlobVerificationError("%s: size mismatch (got %d bytes, expected %d) — retry the pull; if it "
                                    "persists the registry is serving a broken blob" % (what, size, desc.size),
                                    registry=client.domain)
    digest = hashed.digest(part, size)
    if digest != desc.digest:
        _unlink(part)
        raise BlobVerificationError("%s: digest mismatch (got %s) — the data was corrupted in transit or "
                                    "on the registry; retry the pull, and check the registry if it persists"
                                    % (what, digest), registry=client.domain)
    os.replace(part, final)
    return final


class _Hashed:
    """sha256 of a partial file's first ``n`` bytes, kept up to date as data is appended (so a
    fresh download is hashed once, in flight; a resume rehashes the prefix it starts from)."""

    def __init__(self):
        self.h, self.n = hashlib.sha256(), 0

    def at(self, path, offset):
        if offset != self.n:
            self.h, self.n = hashlib.sha256(), 0
            with open(path, "rb") as f:
                while self.n < offset:
                    chunk = f.read(min(CHUNK, offset - self.n))
                    if not chunk:
                        break
                    self.update(chunk)

    def update(self, chunk):
        self.h.update(chunk)
        self.n += len(chunk)

    def digest(self, path, size):
        self.at(path, size)
        return "sha256:" + self.h.hexdigest()


def _fetch_into(client, repo, desc, part, scopes, what, on_progress, cancel, hashed):
    """One GET (ranged when a partial file exists); appends to ``part`` and to ``hashed``."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    if offset > desc.size:
        _unlink(part)
        offset = 0
    if offset == desc.size and desc.size > 0:
        return
    headers = {"Range": "bytes=%d-" % offset} if offset else {}
    with client.request("GET", "/v2/%s/blobs/%s" % (repo, desc.digest), scopes, headers=headers,
                        expect=(200, 206), what=what) as resp:
        if offset and (resp.status != 206 or not resp.headers.get("Content-Range", "").startswith(
                "bytes %d-" % offset)):
            offset = 0  # the server ignored the Range: start over
        with open(part, "r+b" if offset else "wb") as f:
            f.seek(offset)
            f.truncate()
            hashed.at(part, offset)
            current = offset
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                hashed.update(chunk)
                current += len(chunk)
                if current > desc.size:
                    raise BlobVerificationError("%s: the registry sent more than the %d bytes the "
                                                "manifest declares — the image is broken" % (what, desc.size),
                                                registry=client.domain)
                if on_progress:
                    on_progress(current, desc.size)
    if current < desc.size:
        raise http.client.IncompleteRead(b"", desc.size - current)


def fetch_small(client, repo, desc, scopes, limit=64 << 20) -> bytes:
    """Download a small blob (an image config) into memory and verify its digest.

    Raises:
        BlobVerificationError: bigger than ``limit`` or ``desc.size``, or a digest mismatch.
    """
    what = "blob %s of %s/%s" % (desc.digest, client.domain, repo)
    if desc.size > limit:
        raise BlobVerificationError("%s: %d bytes is too large for an image config — the image is broken"
                                    % (what, desc.size), registry=client.domain)
    with client.request("GET", "/v2/%s/blobs/%s" % (repo, desc.digest), scopes, what=what) as resp:
        data = resp.read_limited(desc.size)
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if len(data) != desc.size or got != desc.digest:
        raise BlobVerificationError("%s: digest mismatch (got %s, %d bytes) — retry; if it persists the "
                                    "registry serves a broken blob" % (what, got, len(data)),
                                    registry=client.domain)
    return data


def open_layer(path: str, media_type: str):
    """Open a downloaded layer blob as its uncompressed tar stream (for DiffID checks, extraction).

    Raises:
        RegistryError: a compression this engine cannot read (zstd needs a library the
            standard library lacks).
    """
    if media_type in (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP):
        return gzip.open(path, "rb")
    if media_type == OCI_LAYER:
        return open(path, "rb")
    if media_type == OCI_LAYER_ZSTD:
        raise RegistryError("zstd-compressed layers are not supported by this engine — pull an image "
                            "variant with gzip layers")
    raise RegistryError("unsupported layer media type %r — this engine reads gzip and plain tar layers"
                        % media_type)


def diff_id_of(path: str, media_type: str) -> str:
    """The DiffID (sha256 of the uncompressed tar) of a layer blob."""
    h = hashlib.sha256()
    with open_layer(path, media_type) as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
