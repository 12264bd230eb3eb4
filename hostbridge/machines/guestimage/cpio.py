"""The cpio ``newc`` format (what the Linux kernel unpacks as an initramfs): a writer and a reader.

Every entry is owned by uid/gid 0 (an unprivileged host user builds it); hard links share one
inode number and only the last entry of a link group carries the data, as the kernel expects.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ...errors import VMError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110


class CpioError(VMError):
    """A cpio archive is malformed."""


@dataclass
class Entry:
    """One archive member. ``data`` is the file's bytes or a symlink's target."""

    name: str
    mode: int
    data: bytes = b""
    mtime: int = 0
    ino: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


class Writer:
    """Write newc entries to a binary stream; call ``close()`` to write the trailer.

    Args:
        out: a writable binary stream (e.g. a gzip.GzipFile).
    """

    def __init__(self, out: BinaryIO):
        self.out = out
        self.next_ino = 1
        self.names = set()

    def _header(self, name: bytes, mode, ino, nlink, mtime, size, uid=0, gid=0, rmaj=0, rmin=0):
        fields = (ino, mode, uid, gid, nlink, mtime, size, 0, 0, rmaj, rmin, len(name) + 1, 0)
        head = MAGIC + b"".join(b"%08X" % (v & 0xFFFFFFFF) for v in fields)
        self.out.write(head + name + b"\0" + _pad(HEADER_LEN + len(name) + 1))

    def add(self, name: str, mode: int, data: bytes = b"", mtime: int = 0, ino: int = 0, nlink: int = 1,
            rdev=(0, 0)) -> int:
        """Add one entry (a directory before what it holds).

        Args:
            name: path inside the archive, without a leading slash.
            mode: st_mode (type bits + permissions).
            data: a regular file's bytes or a symlink's target; empty for the other kinds.
            mtime: modification time (seconds).
            ino: share an inode with an earlier entry (hard links); 0 gives a new one.
            nlink: link count to record.
            rdev: (major, minor) of a device node.
        Returns:
            The inode number used.
        Raises:
            CpioError: an empty or duplicate name.
        """
        name = name.lstrip("/")
        if not name or name in self.names:
            raise CpioError("cpio: empty or duplicate entry %r" % name)
        self.names.add(name)
        if not ino:
            ino = self.next_ino
            self.next_ino += 1
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            data = b""
        raw = name.encode("utf-8", "surrogateescape")
        self._header(raw, mode, ino, nlink, mtime, len(data), rmaj=rdev[0], rmin=rdev[1])
        self.out.write(data + _pad(len(data)))
        return ino

    def close(self) -> None:
        """Write the trailer entry (the stream stays open)."""
        self._header(TRAILER.encode(), 0, 0, 1, 0, 0)


def read(data: bytes) -> Iterator[Entry]:
    """Yield the entries of an uncompressed newc archive, the trailer excluded.

    Raises:
        CpioError: a bad magic, or a header or body running past the end.
    """
    off = 0
    while True:
        if off + HEADER_LEN > len(data):
            raise CpioError("cpio: truncated header at offset %d (no trailer)" % off)
        head = data[off:off + HEADER_LEN]
        if head[:6] != MAGIC:
            raise CpioError("cpio: bad magic %r at offset %d (not newc)" % (head[:6], off))
        try:
            v = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        except ValueError as e:
            raise CpioError("cpio: bad header at offset %d" % off) from e
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, _ = v
        name_end = off + HEADER_LEN + namesize
        name = data[off + HEADER_LEN:name_end - 1].decode("utf-8", "surrogateescape")
        body = name_end + len(_pad(name_end))
        if body + size > len(data):
            raise CpioError("cpio: entry %s is truncated" % name)
        if name == TRAILER:
            return
        yield Entry(name, mode, data[body:body + size], mtime, ino, nlink, uid, gid, rmaj, rmin)
        off = body + size + len(_pad(body + size))
