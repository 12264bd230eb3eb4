"""Seed a new volume with the image's content at its mount point, as docker does on first use.

The image is read from its layer directories (bottom to top, overlay whiteouts honoured), so no
mount is needed: a character device 0/0 deletes what lower layers had at that path, and a
directory marked opaque hides everything below it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from ..runtime import safepath

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def _is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path):
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _clear_at(dir_fd, name):
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        safepath.rmtree_at(dir_fd, name)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _set_owner_mode(fd, st):
    os.chown(safepath.fd_path(fd), st.st_uid, st.st_gid)
    os.chmod(safepath.fd_path(fd), stat.S_IMODE(st.st_mode))  # after chown: it clears setuid bits


def _copy_entry_at(src, st, dir_fd, name):
    """Copy ``src`` (of a layer: nobody writes there) as ``name`` under ``dir_fd`` (the volume,
    which a running container may share): created exclusively, never through a symlink, and
    owner and mode set on what was created. Returns the new directory's descriptor, or None."""
    if stat.S_ISDIR(st.st_mode):
        try:
            cur = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if cur is not None and not stat.S_ISDIR(cur.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            cur = None
        if cur is None:
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                pass  # made meanwhile: opened unfollowed below, or refused
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        _set_owner_mode(fd, st)
        return fd
    _clear_at(dir_fd, name)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), name, dir_fd=dir_fd)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, os.fdopen(os.dup(fd), "wb"), 1 << 20)
            _set_owner_mode(fd, st)
        finally:
            os.close(fd)
    return None  # devices, fifos, sockets: not seeded


def _merge(src, dst_fd):
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        if _is_whiteout(st):
            _clear_at(dst_fd, entry.name)
            continue
        if stat.S_ISDIR(st.st_mode) and _is_opaque(entry.path):
            _clear_at(dst_fd, entry.name)
        try:
            fd = _copy_entry_at(entry.path, st, dst_fd, entry.name)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
                raise
            continue  # swapped by a container sharing the volume: skipped, never followed
        if fd is not None:
            try:
                _merge(entry.path, fd)
            finally:
                os.close(fd)


def copy_from_layers(layers, path, target):
    """Copy what the image has at ``path`` into ``target``, by descriptors under ``target``.

    Args:
        layers: layer (or full rootfs) directories, top first (the runtime's ``lower`` order).
        path: the absolute path inside the container.
        target: the volume's data directory (exists, empty).
    """
    rel = path.lstrip("/")
    found = False
    tfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for layer in reversed(layers):
            src = os.path.join(layer, rel)
            if not os.path.realpath(src).startswith(os.path.realpath(layer) + os.sep):
                continue  # a symlinked parent would lead out of the layer (onto the host): not seeded
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                continue
            if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                for name in os.listdir(tfd):
                    _clear_at(tfd, name)
                found = False
                continue
            if _is_opaque(src):
                for name in os.listdir(tfd):
                    _clear_at(tfd, name)
            _merge(src, tfd)
            if not found:
                _set_owner_mode(tfd, st)
                found = True
    finally:
        os.close(tfd)
