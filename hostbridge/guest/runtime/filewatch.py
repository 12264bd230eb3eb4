"""Wait for a directory's files to change: Linux inotify through ctypes (the stdlib has none).

A log follower blocks here until the writer appends, rotates or closes its file, instead of
waking on a timer: a followed line reaches the reader as soon as it is written.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct

from .ns import _libc

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE


class DirWatch:
    """inotify on one directory: ``wait`` returns the changes to files in it.

    Args:
        path: the directory to watch.

    Raises:
        OSError: inotify is not available or the directory cannot be watched.
    """

    def __init__(self, path: str):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "inotify_init1: " + os.strerror(e))
        if _libc.inotify_add_watch(self.fd, os.fsencode(path), _WATCHED) < 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, "inotify_add_watch %s: %s" % (path, os.strerror(e)))

    def wait(self, timeout: float) -> list:
        """Block until a file in the directory changes, or ``timeout`` seconds pass.

        Args:
            timeout: the longest wait, in seconds.

        Returns:
            list: ``(mask, name)`` for each change seen (empty when the time ran out).
        """
        if not select.select([self.fd], [], [], timeout)[0]:
            return []
        events = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            pos = 0
            while pos + _EVENT.size <= len(buf):
                _, mask, _, size = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size:pos + _EVENT.size + size].rstrip(b"\0")
                events.append((mask, os.fsdecode(name)))
                pos += _EVENT.size + size

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
