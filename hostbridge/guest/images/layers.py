"""Layers on disk, keyed by chain id: ``layers/<chainid-hex>/{diff/,layer.tar,meta.json}``.

A layer is extracted into a private temp dir (outside any lock: it is the slow part) and renamed
into place only when complete, so no partial layer is ever visible under ``layers/``.
"""

from __future__ import annotations

import errno
import os
import shutil

from .. import util
# hashlib, tempfile and the tar modules are imported where a layer is made, hashed or removed:
# a start (seconds in an emulated guest) only lists the layers.
from ..errors import InvalidParameter, NotFound


def chain_id(parent_chain, diff_id: str) -> str:
    """Docker's chain id: the diff id for a base layer, else sha256 of ``"parent diffid"``."""
    if not parent_chain:
        return diff_id
    import hashlib
    return "sha256:" + hashlib.sha256(("%s %s" % (parent_chain, diff_id)).encode()).hexdigest()


def chain_ids(diff_ids) -> list:
    """The chain ids of a stack of diff ids, bottom first."""
    out, parent = [], None
    for d in diff_ids:
        parent = chain_id(parent, d)
        out.append(parent)
    return out


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


class _HashingWriter:
    """A write-only file that hashes what passes through (for a tar written once)."""

    def __init__(self, f):
        import hashlib
        self.f, self.sha = f, hashlib.sha256()

    def write(self, data):
        self.sha.update(data)
        return self.f.write(data)

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class Pending:
    """A layer extracted into a temp dir, waiting to be put in place (or discarded)."""

    def __init__(self, tmp_dir, meta):
        self.tmp_dir, self.meta = tmp_dir, meta

    @property
    def chain_id(self):
        return self.meta["chain_id"]


class LayerStore:
    """The layer directories under ``root`` (``ROOT/images/layers``); ``tmp`` is on the same fs."""

    def __init__(self, root: str, tmp: str):
        self.root, self.tmp = util.makedirs(root), util.makedirs(tmp)
        self._meta = {}

    def path(self, chain: str) -> str:
        return os.path.join(self.root, _hex(chain))

    def diff_dir(self, chain: str) -> str:
        return os.path.join(self.path(chain), "diff")

    def tar_path(self, chain: str) -> str:
        return os.path.join(self.path(chain), "layer.tar")

    def exists(self, chain: str) -> bool:
        return os.path.isfile(os.path.join(self.path(chain), "meta.json"))

    def meta(self, chain: str) -> dict:
        """Raises NotFound when the layer is missing."""
        m = self._meta.get(chain)
        if m is None:
            m = util.read_json(os.path.join(self.path(chain), "meta.json"))
        if m is not None:
            self._meta[chain] = m  # a layer never changes once in place
        else:
            raise NotFound("layer %s does not exist: the image store is damaged; remove the "
                           "image and load or pull it again" % chain)
        return m

    def all(self) -> list:
        return ["sha256:" + n for n in os.listdir(self.root) if not n.startswith(".")]

    def extract(self, stream, parent_chain=None, expected_diff_id=None,
                expected_digest=None, whiteouts="overlay") -> Pending:
        """Extract a layer tar stream into a temp dir.

        Args:
            stream: readable binary stream of the (possibly compressed) layer tar.
            parent_chain: chain id of the layer below, or None for a base layer.
            expected_diff_id: when given, the uncompressed stream must hash to it.
            expected_digest: when given, the stream as given must hash to it (a blob digest).

        Returns:
            Pending: commit it with ``put`` or drop it with ``discard``.

        Raises:
            InvalidParameter: corrupt stream or a digest mismatch; UnsafeArchive.
        """
        import tempfile
        from . import tarsafe
        tmp_dir = tempfile.mkdtemp(prefix=".layer-", dir=self.tmp)
        try:
            diff = os.path.join(tmp_dir, "diff")
            os.mkdir(diff, 0o755)
            with open(os.path.join(tmp_dir, "layer.tar"), "wb") as keep:
                info = tarsafe.extract(stream, diff, whiteouts, keep)
            if expected_digest and info["digest"] != expected_digest:
                raise InvalidParameter("layer blob %s is corrupt: its content hashes to %s"
                                       % (expected_digest, info["digest"]))
            if expected_diff_id and info["diff_id"] != expected_diff_id:
                raise InvalidParameter("layer %s does not match its image config: its content "
                                       "hashes to %s" % (expected_diff_id, info["diff_id"]))
            meta = {"diff_id": info["diff_id"], "parent": parent_chain or "",
                    "size": info["size"], "chain_id": chain_id(parent_chain, info["diff_id"])}
            util.write_json(os.path.join(tmp_dir, "meta.json"), meta)
            return Pending(tmp_dir, meta)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

    def adopt(self, diff_dir: str, parent_chain=None) -> Pending:
        """Make a directory (an unmounted overlay upper dir) a layer without copying it.

        The layer tar is written from the directory in one pass (hashed as it is written), then
        the directory itself is renamed to be the layer's ``diff/``: no file is created or
        deleted, which is what costs most on a disk. Across filesystems, where a rename cannot
        be done, the tar just written is extracted instead (as ``extract`` does).

        Args:
            diff_dir: the directory; it is moved (or, across filesystems, left as it is).
            parent_chain: chain id of the layer below, or None for a base layer.

        Returns:
            Pending: commit it with ``put`` or drop it with ``discard``.
        """
        import tempfile
        from . import tarsafe
        from .difftar import write_diff_tar
        tmp_dir = tempfile.mkdtemp(prefix=".layer-", dir=self.tmp)
        try:
            tar_path = os.path.join(tmp_dir, "layer.tar")
            with open(tar_path, "wb") as f:
                out = _HashingWriter(f)
                size = write_diff_tar(diff_dir, out, drop_sockets=True)
            diff = os.path.join(tmp_dir, "diff")
            try:
                os.rename(diff_dir, diff)
                os.chmod(diff, 0o755)  # as extract makes it: the layer's root is not its content
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                os.mkdir(diff, 0o755)
                with open(tar_path, "rb") as f:
                    size = tarsafe.extract(f, diff)["size"]
            meta = {"diff_id": out.digest(), "parent": parent_chain or "", "size": size,
                    "chain_id": chain_id(parent_chain, out.digest())}
            util.write_json(os.path.join(tmp_dir, "meta.json"), meta)
            return Pending(tmp_dir, meta)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

    def put(self, pending: Pending) -> bool:
        """Move a pending layer into place (caller holds the store lock). False if it existed."""
        if self.exists(pending.chain_id):
            self.discard(pending)
            return False
        dest = self.path(pending.chain_id)
        shutil.rmtree(dest, ignore_errors=True)  # a dir without meta.json is a crashed leftover
        os.rename(pending.tmp_dir, dest)
        return True

    def discard(self, pending: Pending) -> None:
        shutil.rmtree(pending.tmp_dir, ignore_errors=True)

    def remove(self, chain: str) -> None:
        """Delete a layer: rename it aside first so a half-deleted layer is never visible."""
        self._meta.pop(chain, None)
        src = self.path(chain)
        if not os.path.exists(src):
            return
        import tempfile
        trash = tempfile.mkdtemp(prefix=".rm-", dir=self.tmp)
        os.rename(src, os.path.join(trash, "layer"))
        shutil.rmtree(trash, ignore_errors=True)

    def remapped_diff(self, chain: str, remap) -> str:
        """The layer's diff dir owned by ``remap``'s ids (a ``userns.Remap``), copied once.

        dockerd keeps one copy of every layer per remap range (``/var/lib/docker/UID.GID``); the
        copy lives in the layer's own dir here, so that removing the layer removes it too. The
        guest kernel (6.1) takes no idmapped overlay layers in a mount we can make before the
        container's user namespace exists; a chown'd copy works on every kernel.
        """
        from ..userns import copy_shifted
        dest = os.path.join(self.path(chain), "remapped", remap.dir_name)
        if os.path.isdir(dest):
            return dest
        import tempfile
        tmp_dir = tempfile.mkdtemp(prefix=".remap-", dir=self.tmp)
        try:
            copy = os.path.join(tmp_dir, "diff")
            copy_shifted(self.diff_dir(chain), copy, remap)
            os.makedirs(os.path.dirname(dest), mode=0o711, exist_ok=True)
            try:
                os.rename(copy, dest)
            except OSError:
                if not os.path.isdir(dest):  # else another start made it meanwhile
                    raise
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return dest

    def clean_tmp(self) -> None:
        """Remove leftovers of a crashed extraction or deletion (at engine start)."""
        for n in os.listdir(self.tmp):
            shutil.rmtree(os.path.join(self.tmp, n), ignore_errors=True)
