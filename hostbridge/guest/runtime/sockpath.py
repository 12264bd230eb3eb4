"""Unix socket paths longer than sun_path allows (107 bytes), as bundle paths can be.

``/var/lib/hostbridge/containers/<64 hex>/bundle/shim.sock`` is 112 bytes. A path through an
open directory fd, ``/proc/self/fd/N/shim.sock``, names the same socket in a few bytes, for
bind and connect alike, without touching the (process-wide) working directory.
"""

from __future__ import annotations

import contextlib
import os

_SUN_PATH_MAX = 107


@contextlib.contextmanager
def usable(path: str):
    """Yield a path to bind or connect to that reaches ``path``; valid inside the ``with``."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield "/proc/self/fd/%d/%s" % (fd, os.path.basename(path))
    finally:
        os.close(fd)
