"""Build contexts' small files kept as hard links, so that the next context with the same files
links them instead of creating them (``tarsafe.extract(file_cache=…)``).

Creating and deleting inodes is what unpacking a context costs on a disk; a rebuild mostly
sends the same files again. An entry is named by the sha256 of the file's bytes and metadata
(mode, owner, mtime), so a link always has exactly what extraction would have written. Entries
are only ever linked, never written: contexts are read-only to the build, and COPY links the
same inodes into layers (``Copier(link=…)``), which are never written either.

An entry no other directory links (``st_nlink == 1``) that the last build did not use is
removed after that build: the cache holds at most the last context's files beyond what layers
already share.
"""

from __future__ import annotations

import errno
import os

from .. import util


class FileCache:
    """Args:
        root: the directory of entries (on the filesystem contexts are unpacked on).
    """

    def __init__(self, root: str):
        self.root = util.makedirs(root)

    def session(self) -> "CacheSession":
        """The cache as one build's extraction uses it (it records which entries it used)."""
        return CacheSession(self)

    def collect(self, used=()) -> int:
        """Remove entries nothing else links, except ``used`` ones. Returns how many went."""
        removed = 0
        with os.scandir(self.root) as it:
            for entry in it:
                if entry.name in used:
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_nlink == 1:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass  # another build's collect got it first
        return removed


class CacheSession:
    """``link``/``keep`` for ``tarsafe.extract``; ``finish()`` collects what it did not use."""

    def __init__(self, cache: FileCache):
        self.cache, self.used = cache, set()

    def link(self, key: str, name: str, dir_fd: int) -> bool:
        """Hard-link entry ``key`` as ``name`` in ``dir_fd``; False when there is none (or the
        filesystem refuses: another device, too many links)."""
        try:
            os.link(os.path.join(self.cache.root, key), name, dst_dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EXDEV, errno.EMLINK, errno.EPERM):
                return False
            raise
        self.used.add(key)
        return True

    def keep(self, key: str, name: str, dir_fd: int) -> None:
        """Make the new file ``name`` in ``dir_fd`` entry ``key`` (best effort)."""
        try:
            os.link(name, os.path.join(self.cache.root, key), src_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            pass  # a concurrent build kept the same bytes
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                raise
            return
        self.used.add(key)

    def finish(self) -> None:
        """After the build: drop entries that only the cache still holds and this build did not use."""
        self.cache.collect(self.used)
