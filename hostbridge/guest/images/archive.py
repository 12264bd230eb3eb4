"""``docker save`` / ``docker load`` archives: the legacy layout (manifest.json) and OCI's.

Docker 25+ writes both into one tar: ``manifest.json`` whose ``Layers`` point into
``blobs/sha256/``, plus ``oci-layout`` and ``index.json``. We write that; we read either
(manifest.json first, as dockerd does), with plain or compressed layers, verifying every
layer against the config's DiffIDs and every blob against its digest. Loading is two phases:
extract and verify everything (no lock held, nothing visible), then install it all at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile

from ..errors import InvalidParameter
from . import reference, tarsafe, views
from .layers import chain_ids

_HEX_NAME = re.compile(r"(?:^|/)([a-f0-9]{64})(?:\.json)?$")
_BLOB = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


class _Archive:
    """Random access to the members of the spooled archive, following its symlinks."""

    def __init__(self, tar):
        self.tar = tar
        self.members = {}
        for m in tar.getmembers():
            self.members[tarsafe.clean_name(m.name)] = m

    def has(self, name):
        return tarsafe.clean_name(name) in self.members

    def open(self, name):
        m = self.members.get(tarsafe.clean_name(name))
        f = self.tar.extractfile(m) if m is not None else None
        if f is None:
            raise InvalidParameter("invalid archive: %s is missing or not a file" % name)
        return f

    def read(self, name, digest=None) -> bytes:
        data = self.open(name).read()
        if digest and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter("invalid archive: %s does not match its digest %s" % (name, digest))
        return data

    def json(self, name, digest=None):
        try:
            return json.loads(self.read(name, digest))
        except ValueError as e:
            raise InvalidParameter("invalid archive: %s is not valid JSON: %s" % (name, e))


def _blob_path(digest):
    return "blobs/sha256/" + digest.split(":", 1)[-1]


def _legacy_entries(arc) -> list:
    """manifest.json as [(config path, config digest, [(layer path, blob digest)], tags, parent)]."""
    items = arc.json("manifest.json")
    if not isinstance(items, list):
        raise InvalidParameter("invalid archive: manifest.json is not a list")
    out = []
    for it in items:
        cfg = it.get("Config") or ""
        m = _HEX_NAME.search(cfg)
        layers = []
        for p in it.get("Layers") or []:
            b = _BLOB.match(tarsafe.clean_name(p))
            layers.append((p, "sha256:" + b.group(1) if b else None))
        out.append((cfg, "sha256:" + m.group(1) if m else None, layers,
                    list(it.get("RepoTags") or []), it.get("Parent") or ""))
    return out


def _oci_name(ann) -> str:
    name = ann.get("io.containerd.image.name") or ""
    if not name:
        ref = ann.get("org.opencontainers.image.ref.name") or ""
        name = ref if ("/" in ref or ":" in ref) else ""  # a bare tag names no repository
    if not name:
        return ""
    try:
        return reference.parse_normalized(name).familiar()
    except InvalidParameter:
        return ""


def _oci_manifests(arc, desc, depth=0):
    """Image manifests under a descriptor, choosing this platform inside multi-platform indexes."""
    if depth > 4:
        raise InvalidParameter("invalid archive: indexes nested too deep")
    if desc.get("mediaType") in _INDEX_TYPES:
        index = arc.json(_blob_path(desc["digest"]), desc["digest"])
        subs = index.get("manifests") or []
        arch = views.machine_arch()
        mine = [d for d in subs if (d.get("platform") or {}).get("architecture") == arch] or subs[:1]
        return [m for d in mine for m in _oci_manifests(arc, d, depth + 1)]
    return [desc]


def _oci_entries(arc) -> list:
    index = arc.json("index.json")
    by_digest = {}
    for desc in index.get("manifests") or []:
        name = _oci_name(desc.get("annotations") or {})
        for m in _oci_manifests(arc, desc):
            entry = by_digest.setdefault(m["digest"], [m, []])
            if name:
                entry[1].append(name)
    out = []
    for digest, (desc, names) in by_digest.items():
        man = arc.json(_blob_path(digest), digest)
        cfg = (man.get("config") or {}).get("digest") or ""
        layers = [(_blob_path(d["digest"]), d["digest"]) for d in man.get("layers") or []]
        out.append((_blob_path(cfg), cfg, layers, names, ""))
    return out


def _extract_image(store, arc, entry, pendings):
    """Verify one image's config and extract the layers the store lacks; returns (bytes, id)."""
    cfg_path, cfg_digest, layers, _, _ = entry
    config_bytes = arc.read(cfg_path, cfg_digest)
    try:
        cfg = json.loads(config_bytes)
        diff_ids = list(cfg["rootfs"]["diff_ids"] or [])
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter("invalid archive: %s is not an image config with rootfs.diff_ids"
                               % cfg_path)
    if len(diff_ids) != len(layers):
        raise InvalidParameter("invalid archive: %s lists %d layers, its config %d"
                               % (cfg_path, len(layers), len(diff_ids)))
    chains = chain_ids(diff_ids)
    for i, (path, blob_digest) in enumerate(layers):
        if store.layers.exists(chains[i]) or chains[i] in pendings:
            continue
        pendings[chains[i]] = store.layers.extract(
            arc.open(path), chains[i - 1] if i else None, diff_ids[i], blob_digest)
    return config_bytes, "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def load(store, stream) -> list:
    """``docker load``: images from a save archive (legacy or OCI layout, optionally compressed).

    Returns:
        list: docker's messages, e.g. ``["Loaded image: busybox:latest"]`` or
        ``["Loaded image ID: sha256:…"]``.

    Raises:
        InvalidParameter: a corrupt, truncated or inconsistent archive (the store is unchanged);
        UnsafeArchive: a hostile layer.
    """
    pendings = {}
    fd, spool = tempfile.mkstemp(prefix=".load-", suffix=".tar", dir=store.tmp)
    try:
        with os.fdopen(fd, "w+b") as f:
            try:
                shutil.copyfileobj(tarsafe.decompressed(stream), f, 1 << 20)
                f.seek(0)
                with tarfile.open(fileobj=f, mode="r:") as tar:
                    arc = _Archive(tar)
                    if arc.has("manifest.json"):
                        entries = _legacy_entries(arc)
                    elif arc.has("index.json"):
                        entries = _oci_entries(arc)
                    else:
                        raise InvalidParameter("invalid archive: neither manifest.json nor index.json"
                                               " found (is this a docker save tar?)")
                    for e in entries:
                        for t in e[3]:
                            reference.parse_normalized(t)
                    done = [_extract_image(store, arc, e, pendings) for e in entries]
            except tarsafe.STREAM_ERRORS as e:
                raise InvalidParameter("invalid archive: %s (is it truncated or corrupt?)" % e)
        ids = {iid for _, iid in done}
        configs = [(b, e[4] if e[4] in ids or e[4] in store.images else "")
                   for (b, _), e in zip(done, entries)]
        messages = []
        with store.lock:
            store.install(list(pendings.values()), configs)
            pendings.clear()
            for (_, iid), e in zip(done, entries):
                for t in e[3]:
                    key = reference.parse_normalized(t).familiar()
                    old = store.repos.get(key)
                    if old and old != iid:
                        messages.append("The image %s already exists, renaming the old one with "
                                        "ID %s to empty string" % (key, old))
                    store.tag(iid, key)
                    messages.append("Loaded image: %s" % key)
                if not e[3]:
                    messages.append("Loaded image ID: %s" % iid)
        return messages
    finally:
        for p in pendings.values():
            store.layers.discard(p)
        os.unlink(spool)


def _selection(store, names) -> list:
    """moby's parseNames: [(image id, [tags])] in order; a bare repository name means all its tags."""
    out = {}
    for n in names:
        ref = None
        if not reference.is_full_id(n):
            try:
                ref = reference.parse(n)
            except InvalidParameter:
                ref = None
        if ref is not None and ref.tag is None and ref.digest is None:
            tagged = [(iid, k) for k, iid in sorted(store.repos.items())
                      if "@" not in k and reference.parse(k).name == ref.name]
            if tagged:
                for iid, k in tagged:
                    out.setdefault(iid, []).append(k)
                continue
        iid = store.resolve(n)
        tags = out.setdefault(iid, [])
        if ref is not None and ref.digest is None and store.repos.get(ref.with_default_tag().familiar()) == iid:
            tags.append(ref.with_default_tag().familiar())
    return list(out.items())


def _add(tar, name, data=None, fileobj=None, size=0):
    ti = tarfile.TarInfo(name)
    ti.mode = 0o644
    if fileobj is not None:
        ti.size = size
        tar.addfile(ti, fileobj)
    elif data is not None:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(ti)


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _plan(store, names, opened) -> tuple:
    """Blobs and the two indexes for ``names`` (caller holds the lock). Layer tars are opened
    here, so that writing can go on without the lock even if an image is deleted meanwhile."""
    selected = _selection(store, names)
    if not selected:
        raise InvalidParameter("nothing to save: name at least one image")
    blobs, manifest, index, repos = {}, [], [], {}
    for iid, tags in selected:
        cfg_bytes = store.config_bytes(iid)
        diff_ids = list(store.config(iid).get("rootfs", {}).get("diff_ids") or [])
        blobs[iid] = (cfg_bytes, None, 0)
        layer_descs = []
        for d, c in zip(diff_ids, store.chains(iid)):
            if d not in blobs:
                f = open(store.layers.tar_path(c), "rb")
                opened.append(f)
                blobs[d] = (None, f, os.fstat(f.fileno()).st_size)
            layer_descs.append({"mediaType": LAYER_TYPE, "digest": d, "size": blobs[d][2]})
        man = _dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                      "config": {"mediaType": CONFIG_TYPE, "digest": iid, "size": len(cfg_bytes)},
                      "layers": layer_descs})
        man_digest = "sha256:" + hashlib.sha256(man).hexdigest()
        blobs[man_digest] = (man, None, 0)
        parent = store.images[iid]["meta"].get("parent") or ""
        item = {"Config": _blob_path(iid), "RepoTags": tags or None,
                "Layers": [_blob_path(d) for d in diff_ids]}
        if parent and parent in dict(selected):
            item["Parent"] = parent  # as docker: only when the parent is saved too
        manifest.append(item)
        desc = {"mediaType": MANIFEST_TYPE, "digest": man_digest, "size": len(man)}
        for t in tags:
            r = reference.parse(t)
            index.append(dict(desc, annotations={"io.containerd.image.name": str(r),
                                                 "org.opencontainers.image.ref.name": r.tag}))
            repos.setdefault(r.familiar_name, {})[r.tag] = iid[7:]
        if not tags:
            index.append(desc)
    return blobs, manifest, index, repos


def save(store, names, out) -> None:
    """``docker save``: write the images to ``out`` as a tar that docker load accepts.

    Args:
        names: references and/or ids; a bare repository name saves all of its tags.
        out: a writable binary file (written as a stream, never seeked).

    Raises:
        NotFound: a name that resolves to no image.
    """
    opened = []
    try:
        with store.lock:
            blobs, manifest, index, repos = _plan(store, names, opened)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, "blobs/")
            _add(tar, "blobs/sha256/")
            for digest, (data, f, size) in blobs.items():
                _add(tar, _blob_path(digest), data, f, size)
            _add(tar, "index.json", _dumps({"schemaVersion": 2, "mediaType": _INDEX_TYPES[0],
                                            "manifests": index}))
            _add(tar, "manifest.json", _dumps(manifest))
            _add(tar, "oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
            if repos:
                _add(tar, "repositories", _dumps(repos))
    finally:
        for f in opened:
            f.close()
