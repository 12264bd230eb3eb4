"""Push: gzip layers, skip blobs the registry has, mount from sibling repositories, upload the
rest (monolithic or chunked), then PUT a schema2 manifest under the tag.

The image store gives what to push: the config blob (byte-exact) and each layer's uncompressed
``layer.tar`` bottom first (``images/<…>/layer.tar``, its sha256 is the DiffID). Layers are
gzipped deterministically (mtime 0), so the compressed digest differs from the DiffID but is the
same each time a layer is pushed. A small JSON cache (``cache_dir``) remembers DiffID → compressed
digest and the repositories that hold it, so a re-push checks existence without compressing and
a push to a sibling repository mounts instead of uploading.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import urllib.parse

from ..errors import InvalidParameter
from ..images import reference as _reference
from ..util import read_json, write_json
from . import blobs, manifest as _manifest
from .auth import repository_scope
from .client import RegistryClient
from .config import RegistryConfig
from .errors import RegistryError
from .progress import Progress, short_id

MAX_PARALLEL = 3
GZIP_LEVEL = 6


class _Reader:
    """A file window ``[start, start+length)`` that reports bytes read (an upload body)."""

    def __init__(self, f, start, length, on_read=None):
        self.f, self.start, self.length, self.on_read = f, start, length, on_read
        self.pos = 0
        f.seek(start)

    def read(self, n=-1):
        left = self.length - self.pos
        n = left if n is None or n < 0 else min(n, left)
        data = self.f.read(n)
        self.pos += len(data)
        if self.on_read:
            self.on_read(self.start + self.pos)
        return data

    def tell(self):
        return self.pos

    def seek(self, pos):
        self.pos = pos
        self.f.seek(self.start + pos)


def gzip_layer(tar_path, dest_dir, level=GZIP_LEVEL):
    """Gzip ``tar_path`` into ``dest_dir`` (mtime 0, no name: deterministic).

    Returns:
        (path, digest, size, diff_id) of the compressed blob and the tar's DiffID.
    """
    fd, out = tempfile.mkstemp(dir=dest_dir, prefix="layer-", suffix=".tar.gz")
    comp_hash, diff_hash = hashlib.sha256(), hashlib.sha256()

    class _Tee:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            comp_hash.update(b)
            return self.f.write(b)

        def flush(self):
            self.f.flush()

    with os.fdopen(fd, "wb") as raw, open(tar_path, "rb") as src:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=_Tee(raw), mtime=0) as gz:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                diff_hash.update(chunk)
                gz.write(chunk)
    return out, "sha256:" + comp_hash.hexdigest(), os.path.getsize(out), "sha256:" + diff_hash.hexdigest()


def blob_exists(client, repo, digest, scopes) -> bool:
    """HEAD the blob: True when the registry has it in ``repo``."""
    with client.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest), scopes, expect=(200, 404),
                        what="blob %s" % digest) as resp:
        return resp.status == 200


def start_upload(client, repo, scopes, mount=None, source=None):
    """POST an upload session, or a cross-repository mount when ``mount``/``source`` are given.

    Returns:
        ("mounted", None) when the registry mounted the blob, else ("upload", location).
    """
    path = "/v2/%s/blobs/uploads/" % repo
    if mount and source:
        path += "?" + urllib.parse.urlencode({"mount": mount, "from": source})
    with client.request("POST", path, scopes, headers={"Content-Length": "0"}, body=b"",
                        expect=(201, 202), what="upload to %s" % repo) as resp:
        resp.read()
        if resp.status == 201:
            return "mounted", None
        loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError("registry %s started an upload without a Location — check the registry"
                            % client.domain)
    return "upload", client.url(loc) if loc.startswith("/") else loc


def _with_digest(location, digest):
    sep = "&" if "?" in location else "?"
    return location + sep + urllib.parse.urlencode({"digest": digest})


def upload_blob(client, repo, path_or_bytes, digest, scopes, location=None, chunk_size=None,
                monolithic=False, on_progress=None) -> None:
    """Upload one blob: POST, then PATCH (one stream or ``chunk_size`` chunks) and PUT; or a
    monolithic PUT with the whole body when ``monolithic``.

    Args:
        path_or_bytes: a file path or the blob's bytes.
        digest: the blob's digest (the registry checks it).
        location: an upload URL already started (by a mount that answered 202).
        on_progress: called with the bytes sent so far.
    Raises:
        RegistryError kinds from the client.
    """
    if location is None:
        _, location = start_upload(client, repo, scopes)
    what = "upload of %s to %s" % (digest, repo)
    if isinstance(path_or_bytes, (bytes, bytearray)):
        f, size = io.BytesIO(path_or_bytes), len(path_or_bytes)
    else:
        f, size = open(path_or_bytes, "rb"), os.path.getsize(path_or_bytes)
    with f:
        if monolithic:
            body = _Reader(f, 0, size, on_progress)
            with client.request("PUT", _with_digest(location, digest), scopes, body=body, expect=(201,),
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(size)}, what=what) as resp:
                resp.read()
            return
        step = chunk_size or max(size, 1)
        offset = 0
        while offset < size:
            n = min(step, size - offset)
            body = _Reader(f, offset, n, on_progress)
            hdrs = {"Content-Type": "application/octet-stream", "Content-Length": str(n),
                    "Content-Range": "%d-%d" % (offset, offset + n - 1)}
            with client.request("PATCH", location, scopes, body=body, headers=hdrs, expect=(202,),
                                what=what) as resp:
                resp.read()
                loc = resp.headers.get("Location") or location
            location = client.url(loc) if loc.startswith("/") else loc
            offset += n
        with client.request("PUT", _with_digest(location, digest), scopes, body=b"",
                            headers={"Content-Length": "0"}, expect=(201,), what=what) as resp:
            resp.read()


def put_manifest(client, repo, reference, raw: bytes, media_type, scopes) -> str:
    """PUT a manifest (or index) under a tag or digest.

    Returns:
        The digest the registry reports (``Docker-Content-Digest``), else sha256 of ``raw``.
    """
    with client.request("PUT", "/v2/%s/manifests/%s" % (repo, reference), scopes, body=raw,
                        headers={"Content-Type": media_type, "Content-Length": str(len(raw))},
                        expect=(201,), what="manifest %s:%s" % (repo, reference)) as resp:
        resp.read()
        return resp.headers.get("Docker-Content-Digest") or _manifest.sha256_digest(raw)


class _LayerCache:
    """DiffID → {"digest", "size", "repos": ["domain/path", …]} (no credentials, just names)."""

    def __init__(self, cache_dir):
        self.dir = cache_dir
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)

    def _path(self, diff_id):
        return os.path.join(self.dir, diff_id.split(":", 1)[1] + ".json")

    def get(self, diff_id):
        return read_json(self._path(diff_id)) if self.dir else None

    def put(self, diff_id, digest, size, repo_name):
        if not self.dir:
            return
        rec = self.get(diff_id) or {}
        if rec.get("digest") != digest:
            rec = {"digest": digest, "size": size, "repos": []}
        if repo_name not in rec["repos"]:
            rec["repos"].append(repo_name)
        write_json(self._path(diff_id), rec)


def push(name, config_bytes, layer_tars, diff_ids=None, auth=None, config=None, progress=None,
         cache_dir=None, work_dir=None, chunk_size=None, max_parallel=MAX_PARALLEL,
         gzip_level=GZIP_LEVEL) -> dict:
    """Push an image as a schema2 manifest under ``name``'s tag.

    Args:
        name: ``registry/repo:tag`` (tag defaults to latest).
        config_bytes: the image config blob, byte-exact.
        layer_tars: uncompressed layer tar paths, bottom first.
        diff_ids: their DiffIDs when the store knows them (else each tar is hashed).
        auth: an AuthConfig for the registry.
        config: a RegistryConfig.
        progress: a callable taking each progress message.
        cache_dir: the DiffID → compressed digest cache (None: no cache, no mounts).
        work_dir: where compressed layers are written for the upload (removed after).
        chunk_size: PATCH chunk size; None streams each layer in one PATCH.
    Returns:
        {"Tag", "Digest", "Size"} of the pushed manifest.
    Raises:
        InvalidParameter for a bad name; the registry errors.
    """
    ref = _reference.parse_normalized(name)
    if ref.tag is None:
        raise InvalidParameter("push needs a tag, not a digest: %s — push NAME:TAG" % name)
    out = Progress(progress)
    client = RegistryClient(ref.domain, auth, config or RegistryConfig())
    repo, scopes = ref.path, [repository_scope(ref.path, ("pull", "push"))]
    cache = _LayerCache(cache_dir)
    diff_ids = list(diff_ids) if diff_ids else [blobs.file_digest(t) for t in layer_tars]
    out.status("The push refers to repository [%s]" % ref.name)
    for d in reversed(diff_ids):
        out.status("Preparing", id=short_id(d), detail=True)
    for d in reversed(diff_ids[:-max_parallel] if len(diff_ids) > max_parallel else []):
        out.status("Waiting", id=short_id(d), detail=True)
    tmp = tempfile.mkdtemp(prefix="push-", dir=work_dir)
    try:
        def one(i):
            return _push_layer(client, ref, layer_tars[i], diff_ids[i], cache, tmp, scopes, out,
                               chunk_size, gzip_level)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
            descs = list(pool.map(one, range(len(layer_tars))))
        cfg_digest = _manifest.sha256_digest(config_bytes)
        if not blob_exists(client, repo, cfg_digest, scopes):
            upload_blob(client, repo, config_bytes, cfg_digest, scopes, monolithic=True)
        doc = {"schemaVersion": 2, "mediaType": _manifest.DOCKER_MANIFEST,
               "config": {"mediaType": _manifest.DOCKER_CONFIG, "size": len(config_bytes), "digest": cfg_digest},
               "layers": descs}
        raw = json.dumps(doc, indent=3).encode()
        digest = put_manifest(client, repo, ref.tag, raw, _manifest.DOCKER_MANIFEST, scopes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.status("%s: digest: %s size: %d" % (ref.tag, digest, len(raw)))
    result = {"Tag": ref.tag, "Digest": digest, "Size": len(raw)}
    out.aux(result)
    return result


def _push_layer(client, ref, tar_path, diff_id, cache, tmp, scopes, out, chunk_size, gzip_level):
    repo, sid = ref.path, short_id(diff_id)
    rec = cache.get(diff_id)
    location = None
    if rec and blob_exists(client, repo, rec["digest"], scopes):
        out.status("Layer already exists", id=sid, detail=True)
        return _layer_desc(rec["digest"], rec["size"])
    for source in (rec or {}).get("repos", []):
        src_ref = _reference.parse(source)
        if src_ref.domain != ref.domain or src_ref.path == repo:
            continue
        mscopes = scopes + [repository_scope(src_ref.path)]
        kind, location = start_upload(client, repo, mscopes, mount=rec["digest"], source=src_ref.path)
        if kind == "mounted":
            cache.put(diff_id, rec["digest"], rec["size"], ref.name)
            out.status("Mounted from %s" % src_ref.path, id=sid, detail=True)
            return _layer_desc(rec["digest"], rec["size"])
        break  # 202: the registry opened an upload session instead; upload into it
    path, digest, size, _ = gzip_layer(tar_path, tmp, gzip_level)
    try:
        if location is None and blob_exists(client, repo, digest, scopes):
            out.status("Layer already exists", id=sid, detail=True)
        else:
            upload_blob(client, repo, path, digest, scopes, location=location, chunk_size=chunk_size,
                        on_progress=lambda cur: out.bar("Pushing", sid, cur, size))
            out.status("Pushed", id=sid, detail=True)
    finally:
        os.unlink(path)
    cache.put(diff_id, digest, size, ref.name)
    return _layer_desc(digest, size)


def _layer_desc(digest, size):
    return {"mediaType": _manifest.DOCKER_LAYER_GZIP, "size": size, "digest": digest}
