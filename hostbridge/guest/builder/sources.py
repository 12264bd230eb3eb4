"""COPY/ADD sources: resolving them in a context (or a stage's filesystem) and hashing them.

Resolution follows docker's classic builder: a source is taken relative to the root (a
leading ``/`` is dropped), must not leave it (``../x`` → ``forbidden path outside the build
context``), follows symlinks inside the root only, and may be a ``filepath.Match`` glob
(``*``, ``?``, ``[a-z]``, ``\\`` escapes; never across ``/``).

The checksum is what the cache keys on: like docker's tarsum it hashes each file's content
and its header (name, type, mode, size, link target) but not its mtime, so touching a file
keeps the cache while editing it does not. Ownership is not in it: context files are always
copied as 0:0 unless ``--chown``, and the build adds ``--chown``/``--chmod`` to the key itself.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat

from ..errors import InvalidParameter, NotFound
from .context import follow_in_scope

_WILDCARDS = re.compile(r"[*?\[]")


class Source:
    """One resolved source: ``rel`` (path under the root, ``/``-separated, "" = the root
    itself), ``path`` (host path after symlinks), ``is_dir``."""

    __slots__ = ("rel", "path", "is_dir")

    def __init__(self, rel, path, is_dir):
        self.rel, self.path, self.is_dir = rel, path, is_dir

    def __repr__(self):
        return "Source(%r%s)" % (self.rel, "/" if self.is_dir else "")


def has_wildcards(text: str) -> bool:
    """Whether a source uses glob characters (docker's containsWildcards)."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in "*?[":
            return True
        i += 1
    return False


def glob_regex(pattern: str) -> "re.Pattern":
    """Go's ``filepath.Match`` as a compiled regex over ``/``-separated paths."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 1 if i < n and pattern[i] in "^]" else i)
            if j == -1:
                raise InvalidParameter("syntax error in pattern")
            body = pattern[i:j]
            negate = body.startswith("^")
            body = (body[1:] if negate else body).replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^/" if negate else "") + body + "]")
            i = j + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.S)


def _clean(src: str) -> str:
    rel = posixpath.normpath(src.replace("\\", "/") if os.sep == "\\" else src)
    rel = rel.lstrip("/") if rel.startswith("/") else rel
    if rel == ".." or rel.startswith("../"):
        raise InvalidParameter("forbidden path outside the build context: %s ()" % src)
    return "" if rel == "." else rel


def resolve(root: str, src: str, wildcards: bool = True) -> list:
    """The sources ``src`` names under ``root``, sorted by path.

    Raises:
        InvalidParameter: the path leaves the root; or a glob matched nothing (docker's
            ``no source files were specified``).
        NotFound: a plain path does not exist.
    """
    rel = _clean(src)
    if wildcards and has_wildcards(rel):
        rx = glob_regex(rel)
        depth = rel.count("/")
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            here = os.path.relpath(dirpath, root)
            here = "" if here == "." else here.replace(os.sep, "/")
            level = here.count("/") + 1 if here else 0
            for name in sorted(dirnames + filenames):
                path = here + "/" + name if here else name
                if rx.match(path):
                    found.extend(resolve(root, path, wildcards=False))
            if level >= depth:
                dirnames[:] = []
        if not found:
            raise InvalidParameter("no source files were specified")
        return sorted(found, key=lambda s: s.rel)
    path = follow_in_scope(root, rel)
    try:
        st = os.stat(path)
    except OSError:
        raise NotFound("file not found in build context or excluded by .dockerignore: "
                       "stat %s: file does not exist" % (rel or ".")) from None
    return [Source(rel, path, stat.S_ISDIR(st.st_mode))]


def _entry_hash(name: str, path: str) -> str:
    """sha256 of one entry's header fields (no mtime, no owner) and its content."""
    st = os.lstat(path)
    h = hashlib.sha256()
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    kind = "l" if link else ("d" if stat.S_ISDIR(st.st_mode) else "f")
    size = st.st_size if kind == "f" else 0
    h.update(("%s\0%s\0%o\0%d\0%s\0" % (name, kind, stat.S_IMODE(st.st_mode), size, link)).encode())
    if kind == "f":
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def source_hash(source: Source) -> str:
    """docker-shaped ``file:<sha256>`` or ``dir:<sha256>`` of one source."""
    if not source.is_dir:
        return "file:" + _entry_hash(posixpath.basename(source.rel), source.path)
    h = hashlib.sha256()
    h.update(_entry_hash(".", source.path).encode())
    for dirpath, dirnames, filenames in os.walk(source.path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, source.path).replace(os.sep, "/")
            h.update(("\n%s:%s" % (rel, _entry_hash(rel, full))).encode())
    return "dir:" + h.hexdigest()


def checksum(sources, contents=()) -> str:
    """The source part of a COPY/ADD cache key and history text.

    Args:
        sources: resolved Sources.
        contents: heredoc sources as (name, data) pairs.

    Returns:
        ``file:…``/``dir:…`` for one source, else ``multi:`` + sha256 of the joined hashes,
        as docker's classic builder names them.
    """
    hashes = [source_hash(s) for s in sources]
    for name, data in contents:
        hashes.append("file:" + hashlib.sha256(("%s\0" % name).encode() + data.encode()).hexdigest())
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()
