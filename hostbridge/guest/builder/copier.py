"""COPY and ADD into a step's rootfs, with docker's destination rules.

- a relative destination is joined to WORKDIR; a trailing ``/`` means "into this directory";
- several sources need a destination ending in ``/``;
- a file goes *into* the destination when it ends in ``/`` or is an existing directory, else
  it becomes the destination; a directory's *contents* are copied into the destination;
- everything copied is owned by 0:0, or by ``--chown`` (names looked up in the image's
  /etc/passwd and /etc/group); new parent directories are created 0755 with that owner;
- ``--chmod`` sets the mode of what is copied;
- ADD of a local tar (plain, gzip, bzip2, xz) unpacks it into the destination directory.

With one source, a context file whose inode already has what the copy must have (owner,
mode, no xattrs) is hard-linked into the step's upper dir instead of copied
(``Copier(link=…)``): creating inodes
is what a build's COPY costs on a disk, and the layer takes the upper dir as it is. Layers are
never written to (a RUN changes a copy-up), and the context is only read, so the shared inode
never changes.

Every path in the rootfs is resolved with symlinks taken inside the rootfs, so an image's
absolute symlink can never make a copy write outside it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile

from ..errors import InvalidParameter
from ..images import tarsafe
from .context import follow_in_scope, is_tar_header

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def normalize_dest(workdir: str, requested: str) -> str:
    """The absolute destination, trailing slash kept (docker's normalizeDest)."""
    if requested.startswith("/"):
        return requested
    dest = posixpath.join("/", workdir or "/", requested)
    dest = posixpath.normpath(dest)
    return dest + "/" if requested.endswith("/") and dest != "/" else dest


def parse_chown(rootfs: str, spec: str):
    """``user[:group]`` → (uid, gid); names resolved in the rootfs's /etc/passwd, /etc/group.

    Raises:
        InvalidParameter: a name that the image does not know.
    """
    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")
    group = group or user
    uid = _lookup(rootfs, "/etc/passwd", user, "uid", "user")
    gid = _lookup(rootfs, "/etc/group", group, "gid", "group")
    return uid, gid


def _lookup(rootfs: str, db: str, name: str, what: str, kind: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        with open(follow_in_scope(rootfs, db), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
    except OSError:
        pass
    raise InvalidParameter("unable to convert uid/gid chown string to host mapping: can't find %s "
                           "for %s %s: no such %s: %s" % (what, kind, name, kind, name))


def parse_chmod(spec: str):
    """``--chmod=755`` → 0o755 (None when not given).

    Raises:
        InvalidParameter: not an octal mode.
    """
    if not spec:
        return None
    try:
        mode = int(spec, 8)
    except ValueError:
        raise InvalidParameter("invalid chmod parameter: %s" % spec) from None
    if mode > 0o7777:
        raise InvalidParameter("invalid chmod parameter: %s" % spec)
    return mode


class Copier:
    """Copies into one rootfs with one owner and mode policy."""

    def __init__(self, rootfs: str, owner=(0, 0), mode=None, cmd_name="COPY", link=None):
        """Args:
            rootfs: the step's rootfs (the mounted view).
            owner: (uid, gid) of what is copied.
            mode: ``--chmod``, or None to keep the sources' modes.
            cmd_name: COPY or ADD, for messages.
            link: ``(link_dir, source_root)``: files under ``source_root`` may be hard-linked
                into ``link_dir`` (``Rootfs.link_dir``) instead of copied; None: always copy.
        """
        self.rootfs, self.owner, self.mode, self.cmd_name = rootfs, owner, mode, cmd_name
        self.link_dir, self.link_from = link if link else (None, None)
        self._linked = set()

    def in_root(self, path: str) -> str:
        return follow_in_scope(self.rootfs, path)

    def copy(self, sources, contents, dest: str, extract_archives=()) -> None:
        """Copy resolved Sources and heredoc ``contents`` [(name, data)] to ``dest`` (absolute).

        Sources whose path is in ``extract_archives`` (ADD's local files) are unpacked into
        ``dest`` when they are tar archives.

        Raises:
            InvalidParameter: several sources and ``dest`` does not end with ``/``; a
                directory over a file.
        """
        if len(sources) + len(contents) > 1 and not dest.endswith("/"):
            raise InvalidParameter("When using %s with more than one source file, the destination "
                                   "must be a directory and end with a /" % self.cmd_name)
        if len(sources) + len(contents) > 1:
            # sources may write the same path twice; the mounted view may not show a link made
            # in the upper dir, and a copy must never open a shared inode: copy them all
            self.link_dir = None
        for src in sources:
            if src.is_dir:
                self.copy_dir(src.path, dest)
            elif src.path in extract_archives and _is_archive(src.path):
                target = self.mkdirs(dest)
                with open(src.path, "rb") as f:
                    tarsafe.extract(f, target, whiteouts="keep")  # docker's ADD keeps .wh. files
            else:
                self.copy_file_to(src.path, posixpath.basename(src.rel) or "file", dest)
        for name, data in contents:
            self.write_file_to(name, data.encode(), dest)

    def _file_target(self, name: str, dest: str) -> str:
        host = self.in_root(dest)
        if dest.endswith("/") or os.path.isdir(host):
            parent = self.mkdirs(dest)
            return os.path.join(parent, name)
        self.mkdirs(posixpath.dirname(dest.rstrip("/")) or "/")
        return host

    def copy_file_to(self, host_src: str, name: str, dest: str) -> None:
        target = self._file_target(name, dest)
        self._copy_entry(host_src, target)

    def write_file_to(self, name: str, data: bytes, dest: str) -> None:
        target = self._file_target(name, dest)
        _remove_nondir(target)
        with open(target, "wb") as f:
            f.write(data)
        self._own(target, 0o644)

    def copy_dir(self, host_src: str, dest: str) -> None:
        self.mkdirs(dest, new_mode=stat.S_IMODE(os.stat(host_src).st_mode))
        for dirpath, dirnames, filenames in os.walk(host_src):
            rel = os.path.relpath(dirpath, host_src)
            inside = dest if rel == "." else posixpath.join(dest, rel)
            # resolve in the rootfs each time: an image's symlink must not lead outside it
            here = self.in_root(inside)
            for d in sorted(dirnames):
                src = os.path.join(dirpath, d)
                if os.path.islink(src):
                    self._copy_entry(src, os.path.join(here, d))
                    continue
                target = self.in_root(posixpath.join(inside, d))
                _remove_nondir(target)
                os.makedirs(target, exist_ok=True)  # a dangling image link's target: parents too
                st = os.stat(src)
                self._own(target, stat.S_IMODE(st.st_mode), st.st_mtime)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            for fn in sorted(filenames):
                self._copy_entry(os.path.join(dirpath, fn), os.path.join(here, fn))

    def _copy_entry(self, src: str, target: str) -> None:
        st = os.lstat(src)
        if os.path.isdir(target) and not os.path.islink(target):
            raise InvalidParameter("cannot copy to non-directory: %s" % target)
        _remove_nondir(target)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
            self._chown(target)
            return
        if not stat.S_ISREG(st.st_mode):
            return  # devices, fifos and sockets are not copied from a context
        if self._link(src, st, target):
            return
        shutil.copyfile(src, target, follow_symlinks=False)
        self._own(target, stat.S_IMODE(st.st_mode), st.st_mtime)

    def _link(self, src: str, st, target: str) -> bool:
        """Hard-link ``src`` into the upper dir at ``target``'s place; False: copy it instead."""
        if self.link_dir is None or not src.startswith(self.link_from + os.sep):
            return False
        mode = self.mode if self.mode is not None else stat.S_IMODE(st.st_mode)
        if ((st.st_uid, st.st_gid) != tuple(self.owner) or stat.S_IMODE(st.st_mode) != mode
                or (st.st_dev, st.st_ino) in self._linked or os.listxattr(src, follow_symlinks=False)):
            return False  # the inode is not what the copy must be, or is already in this layer
        rel = os.path.relpath(target, self.rootfs)
        if rel.startswith(os.pardir):
            return False
        upper = os.path.join(self.link_dir, rel)
        parent = os.path.dirname(upper)
        if not os.path.isdir(parent) or os.path.islink(parent):
            # the directory is only in a lower layer: a no-op chown through the mounted view
            # copies it (and its parents) up, as writing a file there would
            pst = os.lstat(os.path.dirname(target))
            os.lchown(os.path.dirname(target), pst.st_uid, pst.st_gid)
            if not os.path.isdir(parent) or os.path.islink(parent):
                return False
        try:
            try:
                os.link(src, upper, follow_symlinks=False)
            except FileExistsError:
                # the whiteout of the lower file _copy_entry just removed: replace it (with one
                # source, nothing else of this step can be there)
                if not stat.S_ISCHR(os.lstat(upper).st_mode):
                    return False
                os.unlink(upper)
                os.link(src, upper, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.EXDEV:
                self.link_dir = None  # another filesystem: copying is the only way, every time
            if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                return False
            raise
        self._linked.add((st.st_dev, st.st_ino))
        return True

    def _own(self, path: str, mode: int, mtime=None) -> None:
        self._chown(path)
        os.chmod(path, self.mode if self.mode is not None else mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    def _chown(self, path: str) -> None:
        # the engine runs as root; unprivileged (unit tests) can only keep its own ids
        if os.geteuid() == 0:
            os.lchown(path, *self.owner)

    def mkdirs(self, path: str, new_mode: int = 0o755) -> str:
        """Create ``path`` (absolute, in the rootfs) and missing parents; return its host path.

        New directories get the copy's owner; the last one ``new_mode`` (or --chmod).
        """
        parts = [p for p in path.split("/") if p]
        current = "/"
        host = self.rootfs
        for i, part in enumerate(parts):
            current = posixpath.join(current, part)
            host = self.in_root(current)
            if os.path.isdir(host):
                continue
            if os.path.lexists(host):
                raise InvalidParameter("cannot copy to %s: not a directory" % current)
            os.makedirs(host)
            last = i == len(parts) - 1
            self._own(host, (self.mode if self.mode is not None else new_mode) if last else 0o755)
        return host


def _remove_nondir(path: str) -> None:
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
        os.unlink(path)


def _is_archive(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_ARCHIVE_MAGIC):
        try:
            with tarfile.open(path, "r:*") as t:
                return t.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    return is_tar_header(head)
