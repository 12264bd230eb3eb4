"""The image store: configs by image id, layers by chain id, tags and digests in one JSON file.

Layout under ``ROOT/images`` is in docs/internals.md. Every mutation holds ``self.lock`` (the
API server is threaded); slow work (extracting layers) happens before taking it. Return values
are the Docker Engine API's JSON shapes so the API layer only serialises them.
"""

from __future__ import annotations

import json
import os
import threading

from .. import util
from ..errors import Conflict, InvalidParameter, NotFound
# archive, build, distribution and tarsafe (tar, compression, digests) are imported by the
# requests that use them: a start needs none of them (seconds in an emulated guest).
from . import driver, reference, views
from .layers import LayerStore, chain_ids

HARD_CHILD, HARD_RUNNING, SOFT_REF, SOFT_STOPPED = 1, 2, 4, 8
HARD, SOFT = HARD_CHILD | HARD_RUNNING, SOFT_REF | SOFT_STOPPED


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class _DeleteConflict(Conflict):
    def __init__(self, image_id, hard, message, used=False):
        super().__init__("conflict: unable to delete %s (%s) - %s"
                         % (_short(image_id), "cannot be forced" if hard else "must be forced", message))
        self.used = used


def _usage(in_use) -> dict:
    """``in_use`` as {image id: [(container id, running)]}; a plain set means unknown stopped users."""
    if not in_use:
        return {}
    if isinstance(in_use, dict):
        return {k: list(v) for k, v in in_use.items()}
    return {i: [("", False)] for i in in_use}


class ImageStore:
    """Images under ``ROOT/images``.

    Args:
        root: the engine's state root (``ROOT``).
        storage_driver: ``"overlay"`` or ``"vfs"``; None probes (overlay when a mount works).
    """

    def __init__(self, root: str, storage_driver: str = None):
        self.root = util.makedirs(os.path.join(root, "images"))
        self.imagedb = util.makedirs(os.path.join(self.root, "imagedb"))
        self.tmp = util.makedirs(os.path.join(self.root, "tmp"))
        self.layers = LayerStore(os.path.join(self.root, "layers"), self.tmp)
        self.layers.clean_tmp()
        self.repos_path = os.path.join(self.root, "repositories.json")
        self.lock = threading.RLock()
        self.driver = storage_driver or driver.probe(self.tmp)
        self.repos = util.read_json(self.repos_path, {})
        self.held_path = os.path.join(self.root, "held.json")
        self.held = util.read_json(self.held_path, {})  # image id -> chains kept for containers
        self.images = {}  # id -> {"config": dict, "meta": dict}
        for n in os.listdir(self.imagedb):
            if n.endswith(".json") and not n.endswith(".meta.json") and not n.startswith("."):
                iid = "sha256:" + n[:-5]
                with open(os.path.join(self.imagedb, n), "rb") as f:
                    cfg = json.loads(f.read())
                meta = util.read_json(os.path.join(self.imagedb, n[:-5] + ".meta.json"), {})
                self.images[iid] = {"config": cfg, "meta": meta}

    # -- lookups ---------------------------------------------------------------------------

    def resolve(self, name_or_id: str) -> str:
        """The image id (``sha256:…``) for a name, a reference, a full id or a unique id prefix.

        Raises:
            NotFound: ``No such image: busybox:latest`` (docker's wording).
            InvalidParameter: an invalid reference, or an id prefix matching several images.
        """
        with self.lock:
            text = name_or_id or ""
            if reference.is_full_id(text):
                iid = text if text.startswith("sha256:") else "sha256:" + text
                if iid in self.images:
                    return iid
                raise NotFound("No such image: %s" % iid)
            prefix = text[7:] if text.startswith("sha256:") else text
            is_hex = bool(prefix) and all(c in "0123456789abcdef" for c in prefix)
            try:
                ref = reference.parse(text)
            except InvalidParameter:
                if not is_hex:
                    raise
                ref = None
            if ref is not None:
                iid = self.repos.get(ref.with_default_tag().familiar())
                if iid in self.images:
                    return iid
            if is_hex:
                found = [i for i in self.images if i[7:].startswith(prefix)]
                if len(found) == 1:
                    return found[0]
                if len(found) > 1:
                    raise InvalidParameter("image id prefix %r is ambiguous (%d images): give "
                                           "more digits" % (text, len(found)))
            shown = ref.with_default_tag().familiar() if ref is not None else text
            raise NotFound("No such image: %s" % shown)

    def get(self, image_id: str) -> dict:
        """The record ``{"config", "meta"}`` of an image id. Raises NotFound."""
        try:
            return self.images[image_id]
        except KeyError:
            raise NotFound("No such image: %s" % image_id) from None

    def config(self, image_id: str) -> dict:
        """The image's config (parsed). Raises NotFound."""
        return self.get(image_id)["config"]

    def config_bytes(self, image_id: str) -> bytes:
        """The config blob exactly as stored (its sha256 is the id)."""
        with open(os.path.join(self.imagedb, image_id[7:] + ".json"), "rb") as f:
            return f.read()

    def chains(self, image_id: str) -> list:
        """The chain ids of the image's layers, bottom first."""
        return chain_ids(self.config(image_id).get("rootfs", {}).get("diff_ids") or [])

    def size(self, image_id: str) -> int:
        """Docker's image size: the sum of its layers' sizes."""
        return sum(self.layers.meta(c)["size"] for c in self.chains(image_id))

    def refs(self, image_id: str) -> list:
        """Parsed references (tags and digests) naming the image, sorted."""
        return [reference.parse(k) for k, v in sorted(self.repos.items()) if v == image_id]

    def repo_tags(self, image_id):
        """``["busybox:latest", …]``"""
        return [r.familiar() for r in self.refs(image_id) if r.digest is None]

    def repo_digests(self, image_id):
        """``["busybox@sha256:…", …]``"""
        return [r.familiar() for r in self.refs(image_id) if r.digest is not None]

    def children(self, image_id: str) -> list:
        """Ids of the images whose parent is ``image_id``."""
        return [i for i, v in self.images.items() if v["meta"].get("parent") == image_id]

    def lower_dirs(self, image_id: str, remap=None) -> list:
        """The layers' diff dirs, top first (overlay's lowerdir order); with ``remap`` (a
        ``userns.Remap``) their copies owned by its ids (made on first use). Raises NotFound."""
        chains = list(reversed(self.chains(image_id)))
        if remap is None:
            return [self.layers.diff_dir(c) for c in chains]
        return [self.layers.remapped_diff(c, remap) for c in chains]

    def materialize(self, image_id: str, dest: str) -> None:
        """Build a flat rootfs in ``dest`` (an existing dir) for the vfs driver: layers bottom-up.

        Raises:
            NotFound: no such image (or a layer is missing).
        """
        files = []
        try:
            with self.lock:  # open under the lock; an open file outlives a concurrent delete
                for c in self.chains(image_id):
                    self.layers.meta(c)  # NotFound rather than a bare OSError
                    files.append(open(self.layers.tar_path(c), "rb"))
            from . import tarsafe
            for f in files:
                tarsafe.extract(f, dest, whiteouts="apply")
        finally:
            for f in files:
                f.close()

    # -- mutations -------------------------------------------------------------------------

    def _save_repos(self):
        util.write_json(self.repos_path, self.repos)

    def _write_meta(self, image_id):
        util.write_json(os.path.join(self.imagedb, image_id[7:] + ".meta.json"),
                        self.images[image_id]["meta"])

    def add_config(self, config_bytes: bytes, parent: str = "") -> str:
        """Register an image config whose layers are all in place (caller holds the lock).

        Returns:
            str: the image id, sha256 of ``config_bytes``.
        """
        import hashlib
        iid = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        try:
            cfg = json.loads(config_bytes)
        except ValueError as e:
            raise InvalidParameter("invalid image config %s: %s" % (iid, e))
        if not isinstance(cfg, dict):
            raise InvalidParameter("invalid image config %s: not a JSON object" % iid)
        for c in chain_ids((cfg.get("rootfs") or {}).get("diff_ids") or []):
            if not self.layers.exists(c):
                raise Conflict("layer %s of image %s was removed while the image was being "
                               "added: retry" % (c, iid))
        if iid not in self.images:
            util.atomic_write(os.path.join(self.imagedb, iid[7:] + ".json"), config_bytes)
            self.images[iid] = {"config": cfg, "meta": {"parent": parent or ""}}
            self._write_meta(iid)
        return iid

    def install(self, pendings, configs) -> list:
        """Put extracted layers in place and register configs, all or nothing.

        Args:
            pendings: ``layers.Pending`` objects (from ``self.layers.extract``).
            configs: ``[(config_bytes, parent_id)]``, parents before children.

        Returns:
            list: the image ids, in the order of ``configs``.
        """
        import hashlib
        with self.lock:
            added_layers, added_images = [], []
            try:
                for p in pendings:
                    if self.layers.put(p):
                        added_layers.append(p.chain_id)
                for config_bytes, parent in configs:
                    iid = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
                    new = iid not in self.images
                    self.add_config(config_bytes, parent)
                    if new:
                        added_images.append(iid)
                return ["sha256:" + hashlib.sha256(c).hexdigest() for c, _ in configs]
            except BaseException:
                for p in pendings:
                    self.layers.discard(p)
                for iid in added_images:
                    self._forget(iid)
                kept = self._referenced()
                for c in added_layers:
                    if c not in kept:
                        self.layers.remove(c)
                raise

    def _referenced(self, usage=None) -> set:
        """Chains still needed: by images, and by containers of force-deleted images
        (all such holds when ``usage`` is None, else those whose image is still in use)."""
        kept = {c for i in self.images for c in self.chains(i)}
        for iid, chains in self.held.items():
            if usage is None or usage.get(iid):
                kept.update(chains)
        return kept

    def _release_holds(self, usage) -> None:
        """Drop holds of images no container uses any more, and the layers only they kept."""
        gone = [i for i in self.held if not usage.get(i)]
        if not gone:
            return
        chains = [c for i in gone for c in self.held.pop(i)]
        util.write_json(self.held_path, self.held)
        kept = self._referenced(usage)
        for c in chains:
            if c not in kept:
                self.layers.remove(c)

    def _forget(self, iid):
        del self.images[iid]
        for suffix in (".json", ".meta.json"):
            try:
                os.unlink(os.path.join(self.imagedb, iid[7:] + suffix))
            except FileNotFoundError:
                pass

    def tag(self, image_id: str, ref: str) -> None:
        """Point ``ref`` (``name[:tag]`` or ``name@digest``) at an image, replacing any old target.

        Raises:
            NotFound: no such image. InvalidParameter: a bad reference.
        """
        r = reference.parse_normalized(ref)
        if r.digest is not None:
            r = reference.Reference(r.domain, r.path, None, r.digest)  # canonical: name@digest
        with self.lock:
            self.get(image_id)
            self.repos[r.familiar()] = image_id
            self._save_repos()
            if r.digest is None:
                self.images[image_id]["meta"]["last_tag_time"] = util.now_rfc3339()
                self._write_meta(image_id)

    def _untag(self, key: str, records: list) -> None:
        self.repos.pop(key, None)
        records.append({"Untagged": key})

    def delete(self, name: str, force: bool = False, prune: bool = True, in_use=None) -> list:
        """Remove a tag, or an image when it is the last name, with docker's rules.

        Args:
            name: a reference or an (abbreviated) image id.
            force: remove all tags of an id and an image used by stopped containers.
            prune: also delete untagged, unused parents.
            in_use: {image id: [(container id, running)]} (or a set of image ids).

        Returns:
            list: ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:…"}, …]``.

        Raises:
            NotFound; Conflict (docker's ``conflict: unable to delete …`` messages).
        """
        usage = _usage(in_use)
        with self.lock:
            iid = self.resolve(name)
            records = []
            refs = self.refs(iid)
            quiet = False
            if not (iid.startswith(name) or iid[7:].startswith(name)):
                if not force and _single_reference(refs) and usage.get(iid):
                    raise Conflict("conflict: unable to remove repository reference %s (must force)"
                                   " - container %s is using its referenced image %s"
                                   % (json.dumps(name), usage[iid][0][0][:12], _short(iid)))
                ref = reference.parse_normalized(name)
                self._untag(ref.familiar(), records)
                refs = self.refs(iid)
                if ref.digest is None and not any(r.digest is None and r.name == ref.name for r in refs):
                    for r in refs:
                        if r.digest is not None and r.name == ref.name:
                            self._untag(r.familiar(), records)
                    refs = self.refs(iid)
                self._save_repos()
                if refs:
                    return records
                quiet = True
            elif _single_reference(refs):
                self._check(iid, HARD if force else HARD | SOFT_STOPPED, usage)
                for r in refs:
                    self._untag(r.familiar(), records)
                self._save_repos()
            self._delete_image(iid, records, force, prune, quiet, usage)
            return records

    def _check(self, iid, mask, usage):
        if mask & HARD_CHILD and self.children(iid):
            raise _DeleteConflict(iid, True, "image has dependent child images")
        users = usage.get(iid) or []
        running = [c for c, r in users if r]
        if mask & HARD_RUNNING and running:
            raise _DeleteConflict(iid, True, "image is being used by running container %s"
                                  % running[0][:12], used=True)
        if mask & SOFT_REF and self.refs(iid):
            raise _DeleteConflict(iid, False, "image is referenced in multiple repositories")
        if mask & SOFT_STOPPED and users:
            cid = users[0][0]
            raise _DeleteConflict(iid, False, "image is being used by stopped container %s"
                                  % cid[:12] if cid else "image is being used by a container",
                                  used=True)

    def _delete_image(self, iid, records, force, prune, quiet, usage):
        try:
            self._check(iid, HARD if force else HARD | SOFT, usage)
        except _DeleteConflict as c:
            dangling = not self.refs(iid) and not self.children(iid)
            if quiet and (not dangling or c.used):
                return
            raise
        parent = self.images[iid]["meta"].get("parent") or ""
        for r in self.refs(iid):
            self._untag(r.familiar(), records)
        self._save_repos()
        chains = self.chains(iid)
        self._forget(iid)
        records.append({"Deleted": iid})
        if usage.get(iid):
            # Forced out while a (stopped) container still runs on its layers: hold them.
            self.held[iid] = chains
            util.write_json(self.held_path, self.held)
        kept = self._referenced(usage)
        for c in reversed(chains):
            if c not in kept:
                self.layers.remove(c)
                records.append({"Deleted": c})
        if prune and parent in self.images:
            self._delete_image(parent, records, False, prune, True, usage)

    def prune(self, dangling_only: bool = True, in_use=None, filters=None) -> dict:
        """Delete unused images: untagged ones, or (``dangling_only=False``) all unused.

        Args:
            filters: docker's prune filters (``label``, ``label!``, ``until``).

        Returns:
            dict: ``{"ImagesDeleted": [...], "SpaceReclaimed": bytes}``.
        """
        usage = _usage(in_use)
        with self.lock:
            sizes = {c: self.layers.meta(c)["size"] for c in self.layers.all() if self.layers.exists(c)}
            heads = [i for i in self.images if not (dangling_only and self.children(i))]
            targets = [i for i in heads if (self.refs(i) or not self.children(i))
                       and views.matches_prune_filters(self, i, filters)]
            deleted = []
            for iid in targets:
                if iid not in self.images:
                    continue
                refs = self.refs(iid)
                names = [str(r) for r in refs] if refs else [iid]
                if refs and dangling_only and any(r.digest is None for r in refs):
                    continue
                for n in names:
                    try:
                        deleted.extend(self.delete(n, False, True, usage))
                    except (Conflict, NotFound):
                        continue
            self._release_holds(usage)
            kept = self._referenced(usage)
            for c in self.layers.all():  # orphans: a crash between extraction and registration
                if c not in kept:
                    self.layers.remove(c)
            reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
            return {"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}

    # -- the rest lives in its own modules; these keep one entry point -----------------------

    def list(self, all: bool = False, filters=None) -> list:  # noqa: A002 (docker's name)
        """Docker's ImageSummary list (newest first). See ``views.list_images``."""
        return views.list_images(self, all, filters)

    def inspect(self, image_id: str) -> dict:
        """Docker's ImageInspect for an image id. See ``views.inspect``."""
        return views.inspect(self, image_id)

    def history(self, image_id: str) -> list:
        """Docker's HistoryResponseItem list, newest first. See ``views.history``."""
        return views.history(self, image_id)

    def import_rootfs(self, stream, ref=None, changes=None, message="", src="-") -> str:
        """``docker import``. See ``build.import_rootfs``."""
        from . import build
        return build.import_rootfs(self, stream, ref, changes, message, src)

    def commit(self, parent_image_id, diff_dir, **kw) -> str:
        """``docker commit`` and builder steps. See ``build.commit``."""
        from . import build
        return build.commit(self, parent_image_id, diff_dir, **kw)

    def layer_from_dir(self, diff_dir: str, parent_image_id: str = None) -> str:
        """Register an overlay upper dir as a layer over the parent's layers; its DiffID."""
        from . import build
        return build.layer_from_dir(self, diff_dir, parent_image_id)["diff_id"]

    def load(self, stream) -> list:
        """``docker load``. See ``archive.load``."""
        from . import archive
        return archive.load(self, stream)

    def save(self, names, out) -> None:
        """``docker save``. See ``archive.save``."""
        from . import archive
        archive.save(self, names, out)

    def has_layer(self, chain_id: str) -> bool:
        """True when a layer is in place (pull's seam). See ``distribution.has_layer``."""
        from . import distribution
        return distribution.has_layer(self, chain_id)

    def add_pulled_image(self, config_bytes, layers, ref, manifest_digest) -> str:
        """Install a pulled image. See ``distribution.add_pulled_image``."""
        from . import distribution
        return distribution.add_pulled_image(self, config_bytes, layers, ref, manifest_digest)

    def push_source(self, image_id: str):
        """(config bytes, layer tars, DiffIDs) to push. See ``distribution.push_source``."""
        from . import distribution
        return distribution.push_source(self, image_id)

    def record_push(self, image_id: str, name: str, digest: str) -> None:
        """Record a pushed digest in RepoDigests. See ``distribution.record_push``."""
        from . import distribution
        distribution.record_push(self, image_id, name, digest)


def _single_reference(refs) -> bool:
    """moby's isSingleReference: one tag (and digests of that repository only), or one digest."""
    if len(refs) <= 1:
        return len(refs) == 1
    single, canonical = None, set()
    for r in refs:
        if r.digest is not None:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical
