"""A pty in a container's own devpts, opened from the engine's side by descriptors.

The path ``/proc/PID/root/dev/ptmx`` is walked by the kernel in the engine's root: an absolute
symlink the container puts at ``/dev/ptmx`` or ``/dev/pts`` would open a host file. Here
``/dev/pts`` is resolved inside the container's root (``safepath``), its ``ptmx`` and the slave
are opened under that descriptor without following links, and the master must be the ptmx
character device (5:2) before any ioctl is made on it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct

from . import safepath

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430
_PTMX = (5, 2)  # TTYAUX_MAJOR, the ptmx minor


def open_pty_in(pid: int) -> tuple:
    """Open a pty in the devpts of container ``pid`` (for an exec with a tty).

    The terminal is one the container can name: ``tty`` inside prints ``/dev/pts/N``. Give the
    slave to the exec helper as its stdio.

    Returns:
        ``(master_fd, slave_fd, "/dev/pts/N")``, both fds close-on-exec and not our ctty.

    Raises:
        OSError: no usable devpts in the container (the caller falls back to a pty of its own).
    """
    pts = safepath.open_in_root("/proc/%d/root" % pid, "/dev/pts")
    try:
        flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
        master = os.open("ptmx", flags, dir_fd=pts)
        try:
            st = os.fstat(master)
            if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != _PTMX:
                raise OSError(19, "the container's /dev/pts/ptmx is not the ptmx device")  # ENODEV
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
            n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
            slave = os.open(str(n), flags, dir_fd=pts)
        except BaseException:
            os.close(master)
            raise
    finally:
        os.close(pts)
    return master, slave, "/dev/pts/%d" % n
