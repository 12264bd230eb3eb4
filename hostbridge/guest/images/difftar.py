"""The reverse of extraction: an overlay upper dir as a docker layer tar (for commit and build).

Overlay whiteouts become AUFS ones, as docker writes them: a char device 0/0 ``NAME`` becomes
an empty file ``.wh.NAME``; a dir with ``trusted.overlay.opaque=y`` gets ``.wh..wh..opq``.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from ..userns import tar_writer
from .tarsafe import OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX


def _xattrs(target):
    """The xattrs of ``target``: an open descriptor, or a path whose last link is not followed."""
    kw = {} if isinstance(target, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(target, **kw)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for n in names:
        if n.startswith("trusted.overlay."):
            continue  # overlay's own bookkeeping, expressed as .wh. files instead
        try:
            out[n] = os.getxattr(target, n, **kw)
        except OSError as e:
            if e.errno != errno.ENODATA:  # removed meanwhile
                raise
    return out


def _is_opaque(fd):
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


class _Fd:
    """What ``TarFile.gettarinfo`` needs of a file object: a descriptor to fstat."""

    def __init__(self, fd):
        self.fd = fd
        self.name = "/proc/self/fd/%d" % fd  # gettarinfo reads it (and names nothing by it)

    def fileno(self):
        return self.fd


def _empty_file(name, like: tarfile.TarInfo) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode = tarfile.REGTYPE, 0, like.mode & 0o777
    ti.uid, ti.gid, ti.mtime = like.uid, like.gid, like.mtime
    return ti


def write_diff_tar(diff_dir: str, out, drop_sockets: bool = False, remap=None) -> int:
    """Write the tree under ``diff_dir`` to ``out`` as a layer tar (depth first, sorted).

    The tree is walked by descriptors, each entry opened unfollowed and then read through
    its descriptor: a running container that swaps a file or a directory of its upper dir
    for a symlink to a host path meanwhile adds its link to the tar, never the host's file.

    Args:
        diff_dir: an overlay upper dir (or any directory).
        out: a writable binary file.
        drop_sockets: also delete the sockets left out of the tar, so that the directory holds
            exactly what the tar does (when it becomes the layer's diff dir itself).
        remap: a remapped container's ``userns.Remap``: entries carry the container's ids.

    Returns:
        docker's layer size: the bytes of regular files plus the lengths of symlink targets
        (as ``tarsafe.extract`` counts them when the tar is unpacked).
    """
    fd = os.open(diff_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tar_writer(out, remap) as tar:
            return _add_tree(tar, fd, "", drop_sockets)
    finally:
        os.close(fd)


_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)  # removed, or swapped for a link, meanwhile


def _add_tree(tar, dir_fd, arc_dir, drop_sockets):
    size, dropped = 0, False
    dir_st = os.fstat(dir_fd)
    for name in sorted(os.listdir(dir_fd)):
        arc = arc_dir + name
        proc = "/proc/self/fd/%d/%s" % (dir_fd, name)  # the kernel walks only ``name``, unfollowed
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISSOCK(st.st_mode):
                if drop_sockets:
                    os.unlink(name, dir_fd=dir_fd)
                    dropped = True
                continue  # docker skips sockets: they mean nothing outside a live system
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            else:
                fd = None
        except OSError as e:
            if e.errno in _GONE:
                continue
            raise
        try:
            # the inode opened, whatever the name shows now; a link or device by its lstat
            ti = tar.gettarinfo(proc, arc, fileobj=_Fd(fd) if fd is not None else None)
            ti.uname = ti.gname = ""
            ti.mtime = int(os.fstat(fd).st_mtime if fd is not None else st.st_mtime)
            if ti.ischr() and ti.devmajor == 0 and ti.devminor == 0:
                tar.addfile(_empty_file(arc_dir + WH_PREFIX + name, ti))
                continue
            for k, v in _xattrs(fd if fd is not None else proc).items():
                ti.pax_headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
            if ti.isreg():
                with os.fdopen(os.dup(fd), "rb") as f:
                    tar.addfile(ti, f)
                size += ti.size
            else:
                tar.addfile(ti)
                if ti.issym():
                    size += len(ti.linkname.encode("utf-8", "surrogateescape"))
            if ti.isdir():
                if _is_opaque(fd):
                    tar.addfile(_empty_file(arc + "/" + WH_OPAQUE, ti))
                size += _add_tree(tar, fd, arc + "/", drop_sockets)
        except OSError as e:
            if e.errno not in _GONE:
                raise
        finally:
            if fd is not None:
                os.close(fd)
    if dropped:  # the directory's mtime as the tar recorded it
        os.utime(dir_fd, ns=(dir_st.st_atime_ns, dir_st.st_mtime_ns))
    return size
