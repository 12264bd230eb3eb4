"""The build context: the tar the client uploads, unpacked safely, with its Dockerfile found.

The stock CLI sends the context as a tar (it filters it with .dockerignore first, and puts a
Dockerfile from stdin or from outside the context into it under a random name, listed in
.dockerignore); the body may be gzip, bzip2 or xz compressed, and a body that is not a tar at
all is taken as the Dockerfile itself. As docker's daemon does, we read the Dockerfile, then
apply .dockerignore (again: the SDK and older clients may not have), which also drops the
Dockerfile and .dockerignore when they are listed there.

Extraction is ``images/tarsafe.py``'s (as for layers): names are normalised, ``..`` escapes,
writes through symlinks and symlinks climbing out are refused, hard links must point inside.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading

from ..errors import InvalidParameter, NotFound
from ..images import tarsafe
from ..runtime.rootfs import secure_join
from . import dockerignore

DEFAULT_DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


class _Body(io.RawIOBase):
    """The request body with its first bytes (already read to sniff the format) put back.

    With ``pad``, the stream is completed at its end to whole 512-byte blocks plus the two
    zero blocks that end a tar: the stock CLI's ``-f -`` context ends right after the added
    Dockerfile's data, which Go's tar reader accepts and Python's does not.
    """

    def __init__(self, head: bytes, rest, pad: bool = False):
        self.head, self.rest, self.pad = head, rest, pad
        self.total = 0
        self.tail = None

    def readable(self):
        return True

    def readinto(self, buf):
        if self.head:
            data, self.head = self.head[:len(buf)], self.head[len(buf):]
        elif self.tail is None:
            data = self.rest.read(len(buf))
            if not data and self.pad:
                self.tail = b"\0" * ((-self.total) % 512 + 1024)
        else:
            data = b""
        if self.tail:
            data, self.tail = self.tail[:len(buf)], self.tail[len(buf):]
        self.total += len(data)
        buf[:len(data)] = data
        return len(data)


def _read_head(stream, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def is_tar_header(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header (ustar magic or a valid v7 checksum)."""
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        return int(block[148:156].strip(b" \0") or b"-1", 8) == tarfile.calc_chksums(block)[0]
    except ValueError:
        return False


class BuildContext:
    """An unpacked build context in a temp dir; close() removes it.

    Attributes:
        root: the context directory.
        dockerfile_name: the Dockerfile's path inside the context as requested.
        dockerfile: the Dockerfile's bytes.
    """

    def __init__(self, root: str, dockerfile_name: str, dockerfile: bytes):
        self.root, self.dockerfile_name, self.dockerfile = root, dockerfile_name, dockerfile
        self.file_cache = None

    @classmethod
    def from_stream(cls, stream, dockerfile: str = "", tmp_parent: str = None,
                    file_cache=None) -> "BuildContext":
        """Unpack a context upload.

        Args:
            stream: the request body (file-like with ``read``), already de-chunked.
            dockerfile: the ``dockerfile`` query parameter ("" → ``Dockerfile``).
            tmp_parent: where to make the temp dir (default: the system's).
            file_cache: a ``filecache.FileCache`` on ``tmp_parent``'s filesystem, or None: small
                files are then linked from it when the same bytes came before.

        Returns:
            A BuildContext.

        Raises:
            UnsafeArchive: a member would escape the context.
            NotFound: ``Cannot locate specified Dockerfile: NAME``.
            InvalidParameter: the Dockerfile is empty, or the name points outside the context.
        """
        root = tempfile.mkdtemp(prefix="build-", dir=tmp_parent)
        try:
            head = _read_head(stream, 512)
            compressed = head.startswith(_COMPRESSED_MAGIC)
            body = _Body(head, stream, pad=not compressed and is_tar_header(head))
            session = file_cache.session() if file_cache is not None else None
            if compressed or is_tar_header(head) or not head:
                if head:
                    tarsafe.extract(io.BufferedReader(body, 1 << 16), root, whiteouts="keep",
                                    file_cache=session)
                name = dockerfile or DEFAULT_DOCKERFILE
            else:
                # not a tar: the body is the Dockerfile (``docker build - < Dockerfile``)
                name = DEFAULT_DOCKERFILE
                with open(os.path.join(root, name), "wb") as f:
                    shutil.copyfileobj(body, f)
            ctx = cls(root, name, _read_dockerfile(root, name, explicit=bool(dockerfile)))
            ctx.file_cache = session
            ctx._apply_dockerignore()
            return ctx
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _apply_dockerignore(self) -> None:
        path = os.path.join(self.root, DOCKERIGNORE)
        if not os.path.isfile(path) or os.path.islink(path):
            return
        with open(path, "rb") as f:
            matcher = dockerignore.Matcher(dockerignore.read_patterns(f.read()))
        remove_ignored(self.root, matcher)

    def close(self, wait: bool = True) -> None:
        """Remove the unpacked context.

        Args:
            wait: False removes it in a background thread, so that the client has its answer
                without waiting for thousands of files to be deleted (what an engine killed
                meanwhile leaves is a ``build-*`` dir, which ``StoreBackend.clean_stale`` removes).
        """
        if wait:
            self._remove()
        else:
            threading.Thread(target=self._remove, name="build-context-rm", daemon=True).start()

    def _remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.file_cache is not None:
            try:
                self.file_cache.finish()
            except OSError:
                pass  # a cache that cannot be trimmed now is trimmed after the next build

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_dockerfile(root: str, name: str, explicit: bool) -> bytes:
    rel = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    if not rel or rel == ".":
        raise InvalidParameter("Cannot locate specified Dockerfile: %s" % name)
    path = os.path.join(root, rel)
    if not explicit and not os.path.exists(path):
        lower = os.path.join(root, rel.lower())
        if os.path.exists(lower):
            path = lower
    try:
        real = follow_in_scope(root, os.path.relpath(path, root))
        with open(real, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound("Cannot locate specified Dockerfile: %s" % name) from None
    if not data.strip():
        raise InvalidParameter("the Dockerfile (%s) cannot be empty" % name)
    return data


def remove_ignored(root: str, matcher) -> None:
    """Delete what ``matcher`` excludes under ``root`` (directories kept when an exception
    may re-include something inside them)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        rel_dir = os.path.relpath(dirpath, root)
        keep_dirs = []
        for d in dirnames:
            rel = d if rel_dir == "." else rel_dir + "/" + d
            full = os.path.join(dirpath, d)
            if matcher.excluded(rel) and not matcher.has_exceptions():
                shutil.rmtree(full) if not os.path.islink(full) else os.unlink(full)
            elif os.path.islink(full):
                if matcher.excluded(rel):
                    os.unlink(full)
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for fn in filenames:
            rel = fn if rel_dir == "." else rel_dir + "/" + fn
            if matcher.excluded(rel):
                os.unlink(os.path.join(dirpath, fn))
    if matcher.has_exceptions():
        # drop excluded directories that ended up empty, deepest first
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            rel = os.path.relpath(dirpath, root)
            if rel != "." and matcher.excluded(rel) and not os.listdir(dirpath):
                os.rmdir(dirpath)


def follow_in_scope(root: str, rel: str) -> str:
    """``rel`` under ``root`` with symlinks resolved as if ``root`` were ``/`` (never outside it).

    Raises:
        InvalidParameter: a symlink loop.
    """
    try:
        return secure_join(root, rel)
    except OSError as e:
        raise InvalidParameter("cannot resolve %s: %s" % (rel, e.strerror)) from None
