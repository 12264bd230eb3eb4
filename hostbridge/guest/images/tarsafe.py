"""Safe extraction of layer tars: nothing a tar says can write outside its destination.

Names are made relative to the destination as docker does (``/etc/x`` → ``etc/x``); ``..``
escapes are refused. Parents are walked one component at a time with ``O_NOFOLLOW``, so a
member never goes through a symlink, not even one to a place inside the layer (docker would
follow it inside a chroot; refusing is the simpler safe rule and real layers never need it).
Symlinks whose relative target climbs out of the root are refused (docker's rule), hard links
must name a file already in the destination.

Whiteouts: ``overlay`` mode turns AUFS ``.wh.NAME`` into a char device 0/0 and
``.wh..wh..opq`` into ``trusted.overlay.opaque=y`` (a layer dir for overlayfs); ``apply`` mode
deletes what they name (building a flat rootfs for the vfs driver); ``keep`` mode extracts them
as the plain files they are (``docker cp`` and build contexts: docker's ``Untar`` has no
whiteout converter there). A whiteout must name an entry of its directory: ``.wh.``, ``.wh..``
and ``.wh...`` (the directory itself, or its parent) are refused, never applied.

Metadata (owner, mode, xattrs, times) goes to the inode this extraction made, through an
``O_PATH|O_NOFOLLOW`` descriptor of it: a running container that swaps the name for a symlink
to a host file in between (``docker cp``, CVE-2018-15664's class) changes its own link at most.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib

from ..errors import InvalidParameter, UnsafeArchive
from ..runtime import safepath

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CACHED_MAX = 1 << 20  # bytes: larger files are extracted as usual (file_cache)
_CHUNK = 1 << 20
_IS_ROOT = os.geteuid() == 0
# What a member's own content makes the kernel refuse: the tar's fault, so a 400, not a 500.
_MEMBER_ERRNOS = (errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                  errno.ENOTEMPTY, errno.EMLINK, errno.ERANGE, errno.E2BIG)

# The file type each tar member type makes (what _set_meta expects to find under its name).
_TAR_KINDS = {tarfile.REGTYPE: stat.S_IFREG, tarfile.AREGTYPE: stat.S_IFREG, tarfile.CONTTYPE: stat.S_IFREG,
              tarfile.GNUTYPE_SPARSE: stat.S_IFREG, tarfile.DIRTYPE: stat.S_IFDIR,
              tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}

# Errors a corrupt, truncated or foreign stream raises somewhere in tarfile or a decompressor.
STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


class HashingReader:
    """Pass bytes through while counting and hashing them (optionally copying to ``tee``)."""

    def __init__(self, raw, tee=None):
        self.raw, self.tee = raw, tee
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n=-1):
        data = self.raw.read(n)
        if data:
            self.sha.update(data)
            self.size += len(data)
            if self.tee is not None:
                self.tee.write(data)
        return data

    def drain(self):
        """Read to the end, so the hash covers bytes a parser left unread (tar padding)."""
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _Prefixed:
    """A reader that first returns ``head`` (bytes already peeked), then the rest of ``raw``."""

    def __init__(self, head, raw):
        self.head, self.raw = head, raw

    def read(self, n=-1):
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


def decompressed(raw):
    """Wrap ``raw`` in the decompressor its magic bytes name (gzip, bzip2, xz) or none.

    Raises:
        InvalidParameter: the stream is zstd-compressed (not in the standard library).
    """
    head = b""
    while len(head) < 6:
        more = raw.read(6 - len(head))
        if not more:
            break
        head += more
    stream = _Prefixed(head, raw)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidParameter("zstd-compressed layers are not supported by this engine: "
                               "recompress the image with gzip or save it uncompressed")
    return stream


def clean_name(name: str, member: str = None) -> str:
    """Normalise a path relative to the root (``/etc/x`` → ``etc/x``); refuse ``..`` escapes.

    Args:
        name: the path as the tar gives it.
        member: the member it belongs to, when ``name`` is a link target (for the message).

    Raises:
        UnsafeArchive: the path climbs above the root.
    """
    parts = []
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                what = "its link target %r" % name if member else "its path"
                raise UnsafeArchive("refusing tar member %r: %s escapes the destination"
                                    % (member or name, what))
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _lexists_at(name, dir_fd):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class Extractor:
    """Extract tar members under ``dest`` (a directory we own) without following any symlink.

    Args:
        dest: the destination directory (exists).
        whiteouts: ``"overlay"`` (convert to overlay whiteouts), ``"apply"`` (delete) or
            ``"keep"`` (plain files, as docker cp and build contexts keep them).
    """

    def __init__(self, dest: str, whiteouts: str = "overlay", file_cache=None):
        self.dest = os.path.abspath(dest)
        self.whiteouts = whiteouts
        self.file_cache = file_cache  # see extract()
        self.root_fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY)
        self.dir_times = []      # set after all members: children change a dir's mtime
        self.created = set()     # paths written by this layer (apply-mode opaque dirs keep them)
        self.size = 0            # docker's layer size: file bytes plus symlink target lengths

    def close(self):
        os.close(self.root_fd)

    def _parent_fd(self, rel, member, create=True):
        """Open the parent dir of ``rel`` walking real directories only; create missing ones."""
        fd = os.dup(self.root_fd)
        parts = rel.split("/")[:-1]
        try:
            for i, p in enumerate(parts):
                try:
                    nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(p, 0o755, dir_fd=fd)
                    nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafeArchive("refusing tar member %r: its parent %r is not a real "
                                            "directory (writing through symlinks is not allowed)"
                                            % (member, "/".join(parts[:i + 1])))
                    raise
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _remove_at(self, name, fd, rel):
        st = _lexists_at(name, fd)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree_at(name, fd)
        else:
            os.unlink(name, dir_fd=fd)

    def add(self, ti: tarfile.TarInfo, tar: tarfile.TarFile):
        """Extract one member (``tar`` gives its data).

        Raises:
            UnsafeArchive: the member would escape; InvalidParameter: the member cannot exist
                here (a name too long, an xattr the kernel refuses), named in the message.
        """
        try:
            self._add(ti, tar)
        except OSError as e:
            if e.errno not in _MEMBER_ERRNOS:
                raise  # the disk, not the tar (ENOSPC, EIO): a failure of ours
            raise InvalidParameter("cannot extract tar member %r: %s" % (ti.name[:200], e.strerror)) from None

    def _add(self, ti, tar):
        rel = clean_name(ti.name)
        if not rel:
            return  # the root itself ("./"): docker keeps the destination's own metadata
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(WH_PREFIX) and self.whiteouts != "keep":
            return self._whiteout(rel, base, ti)
        if ti.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(rel), ti.linkname))
            if not ti.linkname.startswith("/") and (target == ".." or target.startswith("../")):
                raise UnsafeArchive("refusing tar member %r: symlink target %r escapes the "
                                    "destination" % (ti.name, ti.linkname))
        fd = self._parent_fd(rel, ti.name)
        try:
            existing = _lexists_at(base, fd)
            if existing is not None and not (ti.isdir() and stat.S_ISDIR(existing.st_mode)):
                self._remove_at(base, fd, rel)
            if self._from_cache(ti, tar, base, fd, rel):
                return
            self._create(ti, tar, base, fd, rel)
            self.created.add(rel)
            if not ti.islnk():
                self._set_meta(ti, base, fd, rel)
        finally:
            os.close(fd)

    def _from_cache(self, ti, tar, base, fd, rel) -> bool:
        """A small regular file as a hard link to an identical inode of ``file_cache``; a new
        one is added to it. False: not cacheable, extract as usual."""
        if (self.file_cache is None or not ti.isreg() or ti.size > _CACHED_MAX
                or any(k.startswith("SCHILY.xattr.") for k in ti.pax_headers)):
            return False
        data = tar.extractfile(ti).read()
        h = hashlib.sha256(data)
        h.update(b"\0%o %d %d %d" % (ti.mode & 0o7777, ti.uid, ti.gid, int(ti.mtime * 10 ** 9)))
        key = h.hexdigest()
        self.size += ti.size
        self.created.add(rel)
        if self.file_cache.link(key, base, fd):
            return True  # the same bytes and metadata: the cached inode is never changed
        out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(data)
        self._set_meta(ti, base, fd, rel)
        self.file_cache.keep(key, base, fd)
        return True

    def _create(self, ti, tar, base, fd, rel):
        if ti.isdir():
            if _lexists_at(base, fd) is None:
                os.mkdir(base, 0o700, dir_fd=fd)
        elif ti.isreg():
            src = tar.extractfile(ti)
            out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
            with os.fdopen(out, "wb") as f:
                shutil.copyfileobj(src, f, _CHUNK)
            self.size += ti.size
        elif ti.issym():
            os.symlink(ti.linkname, base, dir_fd=fd)
            self.size += len(ti.linkname.encode())
        elif ti.islnk():
            target = clean_name(ti.linkname, ti.name)
            missing = UnsafeArchive("refusing tar member %r: hard link target %r is not in the "
                                    "layer" % (ti.name, ti.linkname))
            try:
                tfd = self._parent_fd(target, ti.name, create=False)
            except FileNotFoundError:
                raise missing from None
            try:
                tbase = target.rsplit("/", 1)[-1]
                if not target or _lexists_at(tbase, tfd) is None:
                    raise missing
                try:
                    os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
                except PermissionError:  # a directory: no tar tool makes such a link
                    raise InvalidParameter("invalid tar member %r: hard link to directory %r"
                                           % (ti.name, ti.linkname)) from None
            finally:
                os.close(tfd)
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=fd)
        else:
            raise InvalidParameter("unsupported tar member type %r for %r" % (ti.type, ti.name))

    def _set_meta(self, ti, base, fd, rel):
        if ti.issym():
            # the *at calls below never follow the link itself; Linux has no symlink modes
            if _IS_ROOT:
                os.chown(base, ti.uid, ti.gid, dir_fd=fd, follow_symlinks=False)
            self._set_xattrs(ti, "/proc/self/fd/%d/%s" % (fd, base), follow=False)
            os.utime(base, ns=(int(ti.mtime * 10 ** 9),) * 2, dir_fd=fd, follow_symlinks=False)
            return
        # chmod has no "don't follow" form: every change goes through one unfollowed O_PATH
        # descriptor of the entry, so it reaches the inode we made, or nothing
        try:
            pfd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            return  # removed meanwhile (a running container): nothing of ours to change
        try:
            if stat.S_IFMT(os.fstat(pfd).st_mode) != _TAR_KINDS.get(ti.type):
                return  # swapped meanwhile (a symlink now): never change what it points to
            path = "/proc/self/fd/%d" % pfd  # the magic link: resolves to that inode only
            if _IS_ROOT:
                os.chown(path, ti.uid, ti.gid)
            self._set_xattrs(ti, path, follow=True)  # through the magic link to the inode
            os.chmod(path, ti.mode & 0o7777)  # chown first: it clears setuid bits
            mtime_ns = int(ti.mtime * 10 ** 9)
            if ti.isdir():
                self.dir_times.append((rel, mtime_ns))
            else:
                os.utime(path, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(pfd)

    @staticmethod
    def _set_xattrs(ti, path, follow):
        for key, value in ti.pax_headers.items():
            # trusted.overlay.* from a tar would inject whiteout semantics the tar doesn't show.
            if key.startswith("SCHILY.xattr.") and not key[13:].startswith("trusted.overlay."):
                try:
                    os.setxattr(path, key[13:], value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=follow)
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EPERM):
                        raise

    def _whiteout(self, rel, base, ti):
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        fd = self._parent_fd(rel, ti.name)
        try:
            if base == WH_OPAQUE:
                if self.whiteouts == "overlay":
                    os.setxattr("/proc/self/fd/%d" % fd, OPAQUE_XATTR, b"y")  # the dir fd opened
                else:
                    for child in os.listdir(fd):
                        crel = (parent + "/" + child) if parent else child
                        if crel not in self.created:
                            self._remove_at(child, fd, crel)
                return
            if base.startswith(WH_PREFIX + WH_PREFIX):
                return  # other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): docker skips it too
            name = base[len(WH_PREFIX):]
            if name in ("", ".", ".."):
                raise UnsafeArchive("refusing tar member %r: a whiteout must name an entry of its "
                                    "directory, not %r" % (ti.name, name or "(nothing)"))
            nrel = (parent + "/" + name) if parent else name
            self._remove_at(name, fd, nrel)
            if self.whiteouts == "overlay":
                os.mknod(name, stat.S_IFCHR | 0o600, 0, dir_fd=fd)
                if _IS_ROOT:
                    os.chown(name, ti.uid, ti.gid, dir_fd=fd, follow_symlinks=False)
                self.created.add(nrel)
        finally:
            os.close(fd)

    def finish(self):
        """Set directory times (deepest first) now that no member will touch them again."""
        for rel, ns in sorted(self.dir_times, key=lambda t: -t[0].count("/")):
            try:
                fd = self._parent_fd(rel, rel, create=False)
            except (FileNotFoundError, UnsafeArchive):
                continue  # removed or replaced since (a later member, or a running container)
            try:
                os.utime(rel.rsplit("/", 1)[-1], ns=(ns, ns), dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)


def _rmtree_at(name, dir_fd):
    safepath.rmtree_at(dir_fd, name)


def extract(raw, dest: str, whiteouts: str = "overlay", keep_tar=None, file_cache=None, remap=None):
    """Extract a (possibly compressed) layer tar stream into ``dest`` in one pass.

    Args:
        raw: a readable binary stream (plain, gzip, bzip2 or xz tar).
        dest: an existing directory to fill.
        whiteouts: ``"overlay"``, ``"apply"`` or ``"keep"`` (see the module docstring).
        keep_tar: a writable file that receives the uncompressed tar, or None.
        file_cache: None, or an object whose ``link(key, name, dir_fd) -> bool`` hard-links a
            kept inode as ``name`` and ``keep(key, name, dir_fd)`` keeps one: small regular
            files without xattrs are then placed as links to an inode with the same bytes and
            metadata (``key``) when there is one (creating inodes is what extraction costs on
            a disk). Only for trees that nobody writes to (build contexts).
        remap: a ``userns.Remap``: members' ids are a remapped container's, owned on the host
            by the ids they map to (``docker cp`` into it).

    Returns:
        dict: ``diff_id`` (sha256 of the uncompressed tar), ``size`` (docker's layer size),
        ``digest`` and ``compressed_size`` (of the raw stream as given).

    Raises:
        UnsafeArchive: a member would escape ``dest`` (names the member).
        InvalidParameter: the stream is not a readable tar (corrupt, truncated, zstd).
    """
    outer = HashingReader(raw)
    try:
        inner = HashingReader(decompressed(outer), keep_tar)
        ex = Extractor(dest, whiteouts, file_cache)
        try:
            with tarfile.open(fileobj=inner, mode="r|") as tar:
                for ti in tar:
                    if remap is not None:
                        ti.uid, ti.gid = remap.host_uid(ti.uid), remap.host_gid(ti.gid)
                    ex.add(ti, tar)
            inner.drain()
            outer.drain()
            ex.finish()
        finally:
            ex.close()
    except (UnsafeArchive, InvalidParameter):
        raise
    except STREAM_ERRORS as e:
        raise InvalidParameter("invalid tar stream: %s (is the archive truncated or corrupt?)" % e)
    return {"diff_id": inner.digest(), "size": ex.size, "digest": outer.digest(),
            "compressed_size": outer.size}
