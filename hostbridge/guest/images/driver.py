"""Which storage driver works here: overlay when an overlay mount succeeds under ROOT, else vfs.

ROOT may itself sit on overlayfs (a container) or on a filesystem overlay cannot use as an
upper dir; only trying the mount tells.
"""

from __future__ import annotations

import os
import shutil
import time

from ..runtime import ns

_MNT_DETACH = 2


def probe(scratch: str) -> str:
    """``"overlay"`` if an overlay mount works in a temp dir under ``scratch``, else ``"vfs"``."""
    if os.geteuid() != 0:
        return "vfs"
    # os.mkdir, not tempfile.mkdtemp: at every start, and tempfile's import is a fair part of
    # one in an emulated guest. The pid and the clock make the name ours.
    d = os.path.join(scratch, ".probe-%d-%d" % (os.getpid(), time.monotonic_ns()))
    os.mkdir(d, 0o700)
    try:
        for n in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(d, n))
        opts = "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work" % (d, d, d)
        merged = os.path.join(d, "merged")
        ns.mount("overlay", merged, "overlay", 0, opts)  # ns's libc: ctypes.util.find_library would run ldconfig
        ns.umount2(merged, _MNT_DETACH)
        return "overlay"
    except OSError:
        return "vfs"
    finally:
        shutil.rmtree(d, ignore_errors=True)
