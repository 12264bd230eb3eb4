"""The reverse of extraction: an overlay upper dir as a docker layer tar (for commit and build).

Overlay whiteouts become AUFS ones, as docker writes them: a char device 0/0 ``NAME`` becomes
an empty file ``.wh.NAME``; a dir with ``trusted.overlay.opaque=y`` gets ``.wh..wh..opq``.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from .tarsafe import OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX


def _xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for n in names:
        if n.startswith("trusted.overlay."):
            continue  # overlay's own bookkeeping, expressed as .wh. files instead
        out[n] = os.getxattr(path, n, follow_symlinks=False)
    return out


def _is_opaque(path):
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _empty_file(name, like: tarfile.TarInfo) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode = tarfile.REGTYPE, 0, like.mode & 0o777
    ti.uid, ti.gid, ti.mtime = like.uid, like.gid, like.mtime
    return ti


def write_diff_tar(diff_dir: str, out, drop_sockets: bool = False) -> int:
    """Write the tree under ``diff_dir`` to ``out`` as a layer tar (depth first, sorted).

    Args:
        diff_dir: an overlay upper dir (or any directory).
        out: a writable binary file.
        drop_sockets: also delete the sockets left out of the tar, so that the directory holds
            exactly what the tar does (when it becomes the layer's diff dir itself).

    Returns:
        docker's layer size: the bytes of regular files plus the lengths of symlink targets
        (as ``tarsafe.extract`` counts them when the tar is unpacked).
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        return _add_tree(tar, diff_dir, "", drop_sockets)


def _add_tree(tar, path, arc_dir, drop_sockets):
    size, dropped = 0, False
    dir_st = os.lstat(path)
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        arc = arc_dir + name
        st = os.lstat(full)
        if stat.S_ISSOCK(st.st_mode):
            if drop_sockets:
                os.unlink(full)
                dropped = True
            continue  # docker skips sockets: they mean nothing outside a live system
        ti = tar.gettarinfo(full, arc)
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        if ti.ischr() and ti.devmajor == 0 and ti.devminor == 0:
            tar.addfile(_empty_file(arc_dir + WH_PREFIX + name, ti))
            continue
        for k, v in _xattrs(full).items():
            ti.pax_headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        if ti.isreg():
            with open(full, "rb") as f:
                tar.addfile(ti, f)
            size += ti.size
        else:
            tar.addfile(ti)
            if ti.issym():
                size += len(ti.linkname.encode("utf-8", "surrogateescape"))
        if ti.isdir():
            if _is_opaque(full):
                tar.addfile(_empty_file(arc + "/" + WH_OPAQUE, ti))
            size += _add_tree(tar, full, arc + "/", drop_sockets)
    if dropped:  # the directory's mtime as the tar recorded it
        os.utime(path, ns=(dir_st.st_atime_ns, dir_st.st_mtime_ns), follow_symlinks=False)
    return size
