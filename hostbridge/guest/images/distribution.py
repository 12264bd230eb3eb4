"""The store's side of registry transfers: installing a pulled image, and what a push reads.

Pull hands over verified compressed blobs (``registry/pull.py``'s seam, see docs/internals.md).
Each one is extracted through ``tarsafe`` into a private temp dir while its uncompressed bytes
are hashed against the config's DiffID; only when every layer is extracted and verified are the
layers, the config and the tags put in place, together, under the store lock. A mismatch, a
hostile tar or a crash leaves nothing of the image under ``ROOT/images``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json

from ..errors import InvalidParameter, NotFound
from . import reference

MAX_PARALLEL = 3  # layers extracted at once


def has_layer(store, chain_id: str) -> bool:
    """True when the layer with this ChainID is in place (pull skips its download)."""
    return store.layers.exists(chain_id)


def add_pulled_image(store, config_bytes: bytes, layers, ref, manifest_digest: str) -> str:
    """Install a pulled image: extract and verify its new layers, then register it all at once.

    Args:
        store: the ImageStore.
        config_bytes: the config blob, byte-exact (its sha256 is the image id).
        layers: ``pull.PulledLayer`` objects bottom first (``path`` None: already in the store).
        ref: a ``reference.Reference`` (tag or digest) to point at the image.
        manifest_digest: the top-level manifest's digest, recorded as ``repo@digest``.

    Returns:
        str: the image id.

    Raises:
        InvalidParameter: a layer does not match its DiffID or blob digest, or a corrupt tar;
            UnsafeArchive: a hostile layer; Conflict: a layer vanished meanwhile (retry).
    """
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    try:
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter("image config %s has no rootfs.diff_ids: the image is broken" % image_id) from None
    if [lay.diff_id for lay in layers] != list(diff_ids):
        raise InvalidParameter("image config %s and the layers handed over disagree: the image is broken"
                               % image_id)
    names = _names(ref, manifest_digest)
    parents = [None] + [lay.chain_id for lay in layers[:-1]]
    todo = [(lay, parent) for lay, parent in zip(layers, parents)
            if lay.path is not None and not store.layers.exists(lay.chain_id)]
    pendings = []
    try:
        # Layers extract independently (a layer dir holds its own diff, whiteouts included), so
        # they go in parallel: decompression, hashing and writes release the GIL.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(todo), MAX_PARALLEL))) as pool:
            futures = [pool.submit(_extract, store, lay, parent) for lay, parent in todo]
            errors = []
            for f in futures:
                try:
                    pendings.append(f.result())
                except BaseException as e:  # keep collecting, so every finished extraction is discarded
                    errors.append(e)
        if errors:
            raise errors[0]
        with store.lock:
            store.install(pendings, [(config_bytes, "")])
            pendings = []  # installed (moved into place) or discarded by install
            for name in names:
                store.tag(image_id, name)
    finally:
        for p in pendings:
            store.layers.discard(p)
    return image_id


def _extract(store, lay, parent):
    wait = getattr(lay, "wait", None)
    if wait is not None:
        wait()  # the blob may still be downloading: pull overlaps downloads and extraction
    with open(lay.path, "rb") as blob:
        return store.layers.extract(blob, parent, lay.diff_id, lay.digest)


def _names(ref, manifest_digest) -> list:
    """The references a pull records: its tag (or digest), and ``repo@manifest_digest``."""
    repo = reference.Reference(ref.domain, ref.path)
    out = []
    if ref.tag is not None or ref.digest is None:
        out.append(reference.Reference(ref.domain, ref.path, ref.tag or reference.DEFAULT_TAG).familiar())
    if manifest_digest:
        out.append("%s@%s" % (repo.familiar_name, manifest_digest))
    elif ref.digest is not None:
        out.append("%s@%s" % (repo.familiar_name, ref.digest))
    for n in out:
        reference.parse_normalized(n)  # refuse before anything is installed
    return out


def push_source(store, image_id: str):
    """What a push reads: the config bytes, the layer tars bottom first, their DiffIDs.

    Returns:
        ``(config_bytes, [layer.tar paths], [diff ids])``.

    Raises:
        NotFound: the image or one of its layers is gone.
    """
    with store.lock:
        cfg = store.config_bytes(image_id)
        diff_ids = list((store.config(image_id).get("rootfs") or {}).get("diff_ids") or [])
        tars = []
        for c in store.chains(image_id):
            store.layers.meta(c)  # NotFound (with what to do) rather than a bare OSError later
            tars.append(store.layers.tar_path(c))
    return cfg, tars, diff_ids


def record_push(store, image_id: str, name: str, digest: str) -> None:
    """Record a pushed manifest digest as ``repo@digest`` (RepoDigests), as dockerd does.

    Raises:
        InvalidParameter: a bad name.
    """
    r = reference.parse_normalized(name)
    try:
        store.tag(image_id, "%s@%s" % (reference.Reference(r.domain, r.path).familiar_name, digest))
    except NotFound:
        pass  # deleted while it was being pushed: nothing to record
