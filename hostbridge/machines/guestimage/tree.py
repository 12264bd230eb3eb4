"""An in-memory file tree (the guest's root filesystem before it is written as cpio).

Paths are POSIX, absolute, normalised, and merged-/usr: ``/bin/sh`` from a .deb lands at
``/usr/bin/sh`` and ``/bin`` is a symlink to ``usr/bin``, as on an installed Debian system.
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass
from typing import Dict, Iterator, Optional

from . import cpio

# Debian's merged-/usr layout (bookworm's packages still ship files under /bin, /lib…).
USRMERGE = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64", "lib32": "usr/lib32"}


@dataclass
class Node:
    """A file (``data``), a directory, or a symlink (``data`` = its target)."""

    mode: int
    data: bytes = b""
    mtime: int = 0
    origin: str = ""  # the package it came from

    @property
    def is_dir(self):
        return stat.S_ISDIR(self.mode)

    @property
    def is_link(self):
        return stat.S_ISLNK(self.mode)

    @property
    def is_file(self):
        return stat.S_ISREG(self.mode)


def canonical(path: str) -> str:
    """``./bin/sh`` -> ``/usr/bin/sh``: absolute, normalised, merged-/usr."""
    path = posixpath.normpath("/" + path.lstrip("./").lstrip("/")) if path not in (".", "./") else "/"
    parts = path.lstrip("/").split("/", 1)
    if parts[0] in USRMERGE:
        path = "/" + USRMERGE[parts[0]] + ("/" + parts[1] if len(parts) > 1 else "")
    return path


class Tree:
    """The root filesystem being assembled."""

    def __init__(self):
        self.nodes: Dict[str, Node] = {"/": Node(stat.S_IFDIR | 0o755)}
        for top, target in USRMERGE.items():
            if top != "lib32":
                self.mkdir("/" + target)
                self.nodes["/" + top] = Node(stat.S_IFLNK | 0o777, target.encode())

    def mkdir(self, path: str, mode: int = 0o755, mtime: int = 0) -> None:
        """Create ``path`` and its parents (existing directories keep their mode)."""
        path = posixpath.normpath(path)
        if path in self.nodes:
            return
        parent = posixpath.dirname(path)
        if parent != path:
            self.mkdir(parent)
        self.nodes[path] = Node(stat.S_IFDIR | (mode & 0o7777), mtime=mtime)

    def add(self, path: str, node: Node) -> None:
        """Add a file or symlink at ``path`` (its directory is created); replaces an earlier one."""
        path = posixpath.normpath(path)
        if node.is_dir:
            self.mkdir(path, node.mode, node.mtime)
            return
        self.mkdir(posixpath.dirname(path))
        self.nodes[path] = node

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file."""
        self.add(path, Node(stat.S_IFREG | mode, data, origin="hostbridge"))

    def symlink(self, path: str, target: str) -> None:
        """Add a symlink pointing at ``target``."""
        self.add(path, Node(stat.S_IFLNK | 0o777, target.encode(), origin="hostbridge"))

    def resolve(self, path: str, depth: int = 0) -> Optional[str]:
        """The real path of ``path`` inside the tree (symlinks followed), or None if absent."""
        if depth > 40:
            return None
        path = posixpath.normpath(path)
        parts = path.strip("/").split("/") if path != "/" else []
        cur = "/"
        for i, part in enumerate(parts):
            nxt = posixpath.join(cur, part)
            node = self.nodes.get(nxt)
            if node is None:
                return None
            if node.is_link:
                target = node.data.decode()
                target = target if target.startswith("/") else posixpath.join(cur, target)
                rest = "/".join(parts[i + 1:])
                return self.resolve(posixpath.join(target, rest) if rest else target, depth + 1)
            cur = nxt
        return cur

    def remove(self, path: str) -> None:
        """Remove ``path`` and, for a directory, everything under it."""
        path = posixpath.normpath(path)
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.nodes if p == path or p.startswith(prefix)]:
            del self.nodes[p]

    def size(self) -> int:
        """Bytes of file data."""
        return sum(len(n.data) for n in self.nodes.values() if n.is_file)

    def walk(self) -> Iterator[tuple]:
        """(path, node) in sorted order: every directory before what it holds."""
        for path in sorted(self.nodes):
            yield path, self.nodes[path]

    def write_cpio(self, out) -> None:
        """Write the tree as newc entries (uid/gid 0) to the binary stream ``out``."""
        w = cpio.Writer(out)
        for path, node in self.walk():
            if path == "/":
                w.add(".", node.mode, mtime=node.mtime)
                continue
            w.add(path.lstrip("/"), node.mode, node.data, mtime=node.mtime)
        w.close()
