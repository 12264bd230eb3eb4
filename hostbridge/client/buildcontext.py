"""A build context as the docker CLI sends it: a tar of the context dir, ``.dockerignore`` applied.

As the docker CLI does (cli/command/image/build):

- files ``.dockerignore`` excludes are left out, but the Dockerfile and ``.dockerignore`` are
  always sent (the daemon reads them, then applies ``.dockerignore`` itself);
- owners are written as 0:0, names relative to the context, directories with a trailing ``/``;
- a Dockerfile from stdin (``-f -``) or from outside the context is added under a random name
  ``.dockerfile.<hex>``, which is appended to the ``.dockerignore`` sent, so the daemon drops it
  from the context once read.

The tar is produced as a stream of chunks (for a chunked upload), never held whole in memory.
The pattern matching is the guest builder's own (``guest/builder/dockerignore.py``, a pure module).
"""

from __future__ import annotations

import os
import secrets
import stat
import tarfile
import time

from ..errors import HostbridgeError
from ..guest.builder import dockerignore

DOCKERIGNORE = ".dockerignore"
_CHUNK = 1 << 16


class ContextError(HostbridgeError):
    """The build context or the Dockerfile cannot be read or is not where it must be."""


def resolve_dockerfile(context_dir, dockerfile=None):
    """Where the Dockerfile is, as the docker CLI decides it.

    Args:
        context_dir: the context directory.
        dockerfile: ``-f`` as given (relative to the current directory), ``-`` for stdin, or None.

    Returns:
        ``(name_in_context, outside_path)``: the ``dockerfile`` query value and None when the file
        is inside the context; ``(None, path)`` when it is outside (it must be added); ``(None,
        "-")`` for stdin.

    Raises:
        ContextError: the Dockerfile does not exist.
    """
    if dockerfile == "-":
        return None, "-"
    if not dockerfile:
        path = os.path.join(context_dir, "Dockerfile")
        if not os.path.exists(path) and os.path.exists(os.path.join(context_dir, "dockerfile")):
            path = os.path.join(context_dir, "dockerfile")
    else:
        path = os.path.abspath(dockerfile)
    if not os.path.isfile(path):
        raise ContextError("Cannot locate specified Dockerfile: %s" % (dockerfile or "Dockerfile"),
                           hint="give its path with -f")
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(context_dir))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None, path
    return rel.replace(os.sep, "/"), None


def read_ignore(context_dir):
    """The context's ``.dockerignore`` patterns (an empty list when it has none)."""
    try:
        with open(os.path.join(context_dir, DOCKERIGNORE), "rb") as f:
            return dockerignore.read_patterns(f.read())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ContextError("cannot read %s: %s" % (DOCKERIGNORE, e.strerror))


def context_files(context_dir, patterns, keep=()):
    """The context's entries to send, in a stable order.

    Args:
        context_dir: the context directory.
        patterns: ``.dockerignore`` patterns.
        keep: context-relative names always sent (the Dockerfile, ``.dockerignore``).

    Yields:
        ``(relative_name, absolute_path)``, a directory before what it holds.
    """
    matcher = dockerignore.Matcher(patterns)
    keep = set(keep)

    def walk(rel_dir):
        full_dir = os.path.join(context_dir, rel_dir) if rel_dir else context_dir
        try:
            names = sorted(os.listdir(full_dir))
        except OSError as e:
            raise ContextError("cannot read %s in the build context: %s" % (rel_dir or ".", e.strerror),
                               hint="fix its permissions or list it in .dockerignore")
        for name in names:
            rel = rel_dir + "/" + name if rel_dir else name
            full = os.path.join(full_dir, name)
            excluded = rel not in keep and matcher.excluded(rel)
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            if excluded and not (is_dir and matcher.has_exceptions()):
                continue
            if not excluded:
                yield rel, full
            if is_dir:
                yield from walk(rel)

    yield from walk("")


def _header(name, st, link=""):
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.mtime = int(st.st_mtime)
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if stat.S_ISDIR(st.st_mode):
        ti.type, ti.name = tarfile.DIRTYPE, name + "/"
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, link
    elif link:
        ti.type, ti.linkname = tarfile.LNKTYPE, link
    else:
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    return ti


def _member(ti, data=None, path=None):
    """One member's bytes: its header, then its data read in chunks, padded to 512."""
    yield ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if data is not None:
        yield data
        sent = len(data)
    elif path is not None:
        sent = 0
        with open(path, "rb") as f:
            while sent < ti.size:
                chunk = f.read(min(_CHUNK, ti.size - sent))
                if not chunk:
                    raise ContextError("%s shrank while the build context was being sent" % path)
                sent += len(chunk)
                yield chunk
    else:
        return
    if sent % 512:
        yield b"\0" * (512 - sent % 512)


def _generated(name, data):
    ti = tarfile.TarInfo(name)
    ti.mode, ti.mtime, ti.size = 0o600, int(time.time()), len(data)
    return _member(ti, data=data)


def tar_context(context_dir, dockerfile_name=None, extra_dockerfile=None):
    """Stream the context as a tar.

    Args:
        context_dir: the context directory.
        dockerfile_name: the Dockerfile's name inside the context (always sent).
        extra_dockerfile: bytes of a Dockerfile from stdin or outside the context, or None.

    Returns:
        ``(chunks, dockerfile_param)``: an iterator of bytes, and the ``dockerfile`` query
        value (the random name when ``extra_dockerfile`` is given).

    Raises:
        ContextError: the context cannot be read (raised while iterating, too).
    """
    if not os.path.isdir(context_dir):
        raise ContextError("unable to prepare context: path %r not found" % context_dir)
    patterns = read_ignore(context_dir)
    random_name = ".dockerfile." + secrets.token_hex(10) if extra_dockerfile is not None else None
    keep = [n for n in (dockerfile_name, DOCKERIGNORE) if n]

    def chunks():
        inodes = {}
        buf, size = [], 0
        for rel, full in context_files(context_dir, patterns, keep):
            if random_name and rel == DOCKERIGNORE:
                continue  # sent below, with the random name added
            try:
                st = os.lstat(full)
                link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            except OSError as e:
                raise ContextError("cannot read %s in the build context: %s" % (rel, e.strerror))
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                first = inodes.setdefault((st.st_dev, st.st_ino), rel)
                link = first if first != rel else ""
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue  # sockets, fifos, devices: nothing a build can use
            ti = _header(rel, st, link)
            for piece in _member(ti, path=full if ti.type == tarfile.REGTYPE else None):
                buf.append(piece)
                size += len(piece)
                if size >= _CHUNK:
                    yield b"".join(buf)
                    buf, size = [], 0
        if random_name:
            ignore = b""
            try:
                with open(os.path.join(context_dir, DOCKERIGNORE), "rb") as f:
                    ignore = f.read()
            except FileNotFoundError:
                pass
            buf.extend(_generated(DOCKERIGNORE, ignore + ("\n%s\n" % random_name).encode()))
            buf.extend(_generated(random_name, extra_dockerfile))
        buf.append(b"\0" * 1024)
        yield b"".join(buf)

    return chunks(), random_name or dockerfile_name
