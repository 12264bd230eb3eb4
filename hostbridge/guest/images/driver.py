"""Which storage driver works here: overlay when an overlay mount succeeds under ROOT, else vfs.

ROOT may itself sit on overlayfs (a container) or on a filesystem overlay cannot use as an
upper dir; only trying the mount tells.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile

_MNT_DETACH = 2


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def probe(scratch: str) -> str:
    """``"overlay"`` if an overlay mount works in a temp dir under ``scratch``, else ``"vfs"``."""
    if os.geteuid() != 0:
        return "vfs"
    d = tempfile.mkdtemp(prefix=".probe-", dir=scratch)
    try:
        for n in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(d, n))
        opts = "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work" % (d, d, d)
        libc = _libc()
        merged = os.path.join(d, "merged").encode()
        if libc.mount(b"overlay", merged, b"overlay", 0, opts.encode()) != 0:
            return "vfs"
        libc.umount2(merged, _MNT_DETACH)
        return "overlay"
    except OSError:
        return "vfs"
    finally:
        shutil.rmtree(d, ignore_errors=True)
