"""Read Debian .deb files: an ``ar`` archive holding ``data.tar.{xz,gz,zst,bz2}`` or plain tar.

Only the standard library (tarfile, lzma, gzip): no dpkg-deb, works on any OS.
"""

from __future__ import annotations

import io
import tarfile
from typing import Iterator, Tuple

from ...errors import VMError

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


class DebError(VMError):
    """A .deb file is not a readable Debian package."""


def ar_members(data: bytes) -> Iterator[Tuple[str, bytes]]:
    """Yield (name, content) of each member of an ``ar`` archive held in memory.

    Args:
        data: the whole archive.
    Raises:
        DebError: not an ar archive, or a member runs past the end.
    """
    if not data.startswith(AR_MAGIC):
        raise DebError("not an ar archive (a .deb starts with !<arch>)")
    off = len(AR_MAGIC)
    while off + AR_HEADER <= len(data):
        header = data[off:off + AR_HEADER]
        if header[58:60] != b"`\n":
            raise DebError("corrupt ar member header at offset %d" % off)
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise DebError("corrupt ar member size at offset %d" % off) from e
        start = off + AR_HEADER
        if start + size > len(data):
            raise DebError("ar member %s is truncated" % name)
        yield name, data[start:start + size]
        off = start + size + (size & 1)  # members are 2-byte aligned


def open_data_tar(path: str) -> tarfile.TarFile:
    """Open the ``data.tar.*`` of the .deb at ``path`` for streaming reads.

    Args:
        path: a .deb file.
    Returns:
        An open TarFile (the caller closes it).
    Raises:
        DebError: no data member, an unknown compression, or not an ar archive.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        for name, content in ar_members(data):
            if not name.startswith("data.tar"):
                continue
            if name.endswith(".zst"):
                raise DebError("%s: zstd-compressed data (%s) is not supported" % (path, name))
            # "r:*" picks gz/bz2/xz or none by the stream's own magic.
            return tarfile.open(fileobj=io.BytesIO(content), mode="r:*")
    except DebError as e:
        raise DebError("%s: %s" % (path, e.message)) from e
    except tarfile.TarError as e:
        raise DebError("%s: unreadable data.tar: %s" % (path, e)) from e
    raise DebError("%s: no data.tar member" % path)


def control_fields(path: str) -> dict:
    """The fields of the package's ``control`` file (Package, Version, Architecture…).

    Raises:
        DebError: the archive or its control member is unreadable.
    """
    with open(path, "rb") as f:
        data = f.read()
    for name, content in ar_members(data):
        if name.startswith("control.tar"):
            try:
                with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as tar:
                    for member in tar:
                        if member.name.lstrip("./") == "control":
                            text = tar.extractfile(member).read().decode("utf-8", "replace")
                            return parse_control(text)
            except tarfile.TarError as e:
                raise DebError("%s: unreadable control.tar: %s" % (path, e)) from e
    raise DebError("%s: no control file" % path)


def parse_control(text: str) -> dict:
    """Parse one deb822 stanza (continuation lines are joined with a newline)."""
    fields, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip()
            fields[key] = value.strip()
    return fields
