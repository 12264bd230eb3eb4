"""New images from a rootfs tar (``docker import``) or from a container's upper dir (commit)."""

from __future__ import annotations

import copy
import json
import os
import tempfile

from .. import ENGINE_VERSION, util
from ..errors import InvalidParameter
from . import changes as changes_mod
from . import reference, views
from .difftar import write_diff_tar

DOCKER_VERSION = "hostbridge-" + ENGINE_VERSION


def config_bytes(cfg: dict) -> bytes:
    """An image config serialised the way its id is computed from (compact, sorted keys)."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def _check_ref(ref):
    """A new image's name must be ``name[:tag]``; digests name content, they are not given."""
    if ref and reference.parse(ref).digest is not None:
        raise InvalidParameter("invalid reference %r: a new image cannot be named by digest; "
                               "use name:tag" % ref)


def _omit_empty(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in ("", None, False)}


def import_rootfs(store, stream, ref=None, changes=None, message="", src="-") -> str:
    """``docker import``: one layer from a (possibly compressed) rootfs tar.

    Args:
        stream: readable binary stream of the tar.
        ref: ``name[:tag]`` to tag the image with, or None.
        changes: Dockerfile-style lines (``CMD ["sh"]``, ``ENV A=1`` …).
        message: the commit message (default ``Imported from SRC``).
        src: where the tar came from (``-`` for the request body, as docker).

    Returns:
        str: the new image id.

    Raises:
        InvalidParameter: a bad ref, change or tar (the store is left unchanged); UnsafeArchive.
    """
    _check_ref(ref)  # fail before reading a large body
    cfg = changes_mod.apply(views.container_config(None), changes)
    pending = store.layers.extract(stream, None)
    created = util.now_rfc3339()
    msg = message or "Imported from %s" % src
    image = {"architecture": views.machine_arch(), "comment": msg, "config": cfg,
             "created": created, "docker_version": DOCKER_VERSION,
             "history": [{"created": created, "comment": msg}], "os": "linux",
             "rootfs": {"type": "layers", "diff_ids": [pending.meta["diff_id"]]}}
    with store.lock:
        iid = store.install([pending], [(config_bytes(image), "")])[0]
        if ref:
            store.tag(iid, ref)
    return iid


def _pending_from_dir(store, diff_dir, parent_chain, remap=None):
    fd, tmp = tempfile.mkstemp(prefix=".diff-", suffix=".tar", dir=store.tmp)
    try:
        with os.fdopen(fd, "w+b") as f:
            write_diff_tar(diff_dir, f, remap=remap)
            f.seek(0)
            return store.layers.extract(f, parent_chain)
    finally:
        os.unlink(tmp)


def layer_from_dir(store, diff_dir, parent_image_id=None, adopt=False) -> dict:
    """Register ``diff_dir`` (an overlay upper dir) as a layer above the parent's layers.

    Args:
        adopt: move ``diff_dir`` itself into the store as the layer's diff dir (it must be
            unmounted and not used again) instead of copying it through a tar.

    Returns:
        dict: the layer's meta (``diff_id``, ``chain_id``, ``parent``, ``size``).
    """
    chains = store.chains(parent_image_id) if parent_image_id else []
    parent_chain = chains[-1] if chains else None
    if adopt:
        pending = store.layers.adopt(diff_dir, parent_chain)
    else:
        pending = _pending_from_dir(store, diff_dir, parent_chain)
    with store.lock:
        store.layers.put(pending)
    return pending.meta


def commit(store, parent_image_id, diff_dir, config=None, author="", comment="", changes=None,
           ref=None, created_by="", container_id="", container_config=None, remap=None) -> str:
    """A new image: the parent's layers plus ``diff_dir`` as one more layer.

    Args:
        parent_image_id: the image below (None for ``FROM scratch``).
        diff_dir: the container's upper dir; None adds an empty-layer history entry only.
        config: the new image's container config (default: the parent's).
        author, comment: as ``docker commit -a/-m``.
        changes: Dockerfile-style lines applied to ``config``.
        ref: ``name[:tag]`` to tag the result with.
        created_by: the history entry's command (the builder's ``/bin/sh -c #(nop) …``).
        container_id, container_config: recorded as docker does for commits.
        remap: a remapped container's ``userns.Remap``: the layer gets the container's ids.

    Returns:
        str: the new image id.
    """
    _check_ref(ref)
    parent = copy.deepcopy(store.config(parent_image_id)) if parent_image_id else {}
    chains = store.chains(parent_image_id) if parent_image_id else []
    base = config if config is not None else parent.get("config")
    cfg = changes_mod.apply(views.container_config(base), changes)
    pending = _pending_from_dir(store, diff_dir, chains[-1] if chains else None, remap) if diff_dir else None
    created = util.now_rfc3339()
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if pending:
        diff_ids.append(pending.meta["diff_id"])
    image = {k: v for k, v in parent.items() if k not in ("id", "parent", "container",
                                                         "container_config", "author", "comment")}
    image.update({"architecture": parent.get("architecture") or views.machine_arch(),
                  "os": parent.get("os") or "linux", "config": cfg, "created": created,
                  "docker_version": DOCKER_VERSION,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    image.update(_omit_empty({"author": author, "comment": comment, "container": container_id,
                              "container_config": container_config}))
    image["history"] = list(parent.get("history") or []) + [_omit_empty(
        {"created": created, "author": author, "created_by": created_by, "comment": comment,
         "empty_layer": pending is None})]
    with store.lock:
        iid = store.install([pending] if pending else [], [(config_bytes(image), parent_image_id or "")])[0]
        if ref:
            store.tag(iid, ref)
    return iid
