"""Seed a new volume with the image's content at its mount point, as docker does on first use.

The image is read from its layer directories (bottom to top, overlay whiteouts honoured), so no
mount is needed: a character device 0/0 deletes what lower layers had at that path, and a
directory marked opaque hides everything below it.
"""

from __future__ import annotations

import os
import shutil
import stat

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


def _clear(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_entry(src, dst, st):
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.unlink(dst)
        os.makedirs(dst, exist_ok=True)
    else:
        _clear(dst)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst)
        else:
            return  # devices, fifos, sockets: not seeded
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))


def _merge(src, dst):
    for base, dirs, files in os.walk(src):
        rel = os.path.relpath(base, src)
        out = dst if rel == "." else os.path.join(dst, rel)
        for name in list(dirs) + files:
            s, d = os.path.join(base, name), os.path.join(out, name)
            st = os.lstat(s)
            if _is_whiteout(st):
                _clear(d)
                continue
            if stat.S_ISDIR(st.st_mode) and _is_opaque(s):
                _clear(d)
            _copy_entry(s, d, st)
        dirs[:] = [n for n in dirs if not os.path.islink(os.path.join(base, n))]


def copy_from_layers(layers, path, target):
    """Copy what the image has at ``path`` into ``target``.

    Args:
        layers: layer (or full rootfs) directories, top first (the runtime's ``lower`` order).
        path: the absolute path inside the container.
        target: the volume's data directory (exists, empty).
    """
    rel = path.lstrip("/")
    found = False
    for layer in reversed(layers):
        src = os.path.join(layer, rel)
        if not os.path.realpath(src).startswith(os.path.realpath(layer) + os.sep):
            continue  # a symlinked parent would lead out of the layer (onto the host): not seeded
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            continue
        if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
            for name in os.listdir(target):
                _clear(os.path.join(target, name))
            found = False
            continue
        if _is_opaque(src):
            for name in os.listdir(target):
                _clear(os.path.join(target, name))
        _merge(src, target)
        if not found:
            os.chmod(target, stat.S_IMODE(st.st_mode))
            os.lchown(target, st.st_uid, st.st_gid)
            found = True
