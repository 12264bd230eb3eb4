"""Paths inside a container's tree, resolved by descriptors: nothing a container swaps in leads out.

``open_in_root`` walks a path one component at a time with ``O_PATH|O_NOFOLLOW``; each symlink
is read and resolved here, inside the root (``..`` stops at it, absolute targets restart at
it), as ``secure_join`` does by string, but what is returned is a descriptor of what was found.
A caller then acts on ``/proc/self/fd/N`` (mount onto it, chmod it): the kernel does not walk
the path again, so a component swapped for a symlink to a host path in between changes nothing
(CVE-2021-30465's and CVE-2018-15664's class). The kernel's ``openat2(RESOLVE_IN_ROOT)`` does
the same walk in one call; ours works on every kernel and can create what is missing.

``make_readonly`` makes a mount and every mount under it read-only: ``mount_setattr`` with
``AT_RECURSIVE`` (5.12+), else each submount remounted by its own descriptor.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from . import ns

_MAX_LINKS = 40
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (the generic table)
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def fd_path(fd: int) -> str:
    """The magic link that names what ``fd`` holds, for calls that take only a path."""
    return "/proc/self/fd/%d" % fd


def open_in_root(root, path: str, create: str = None, mode: int = 0o755) -> int:
    """An ``O_PATH`` descriptor of ``path`` as a process chrooted to ``root`` would see it.

    Without ``create``, the kernel's ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` does
    the walk where it has it (5.6+); else (or when it asks for a retry) the walk is done here.

    Args:
        root: the root directory: a path, or a descriptor (not closed).
        path: the path inside it (absolute or not; ``..`` never climbs above ``root``).
        create: None, or ``"dir"``/``"file"``: create a missing last component of that kind
            (and missing parents as directories), each by its parent's descriptor.
        mode: the mode of directories and files created.

    Returns:
        int: an ``O_PATH|O_CLOEXEC`` descriptor (the caller closes it).

    Raises:
        FileNotFoundError: a component is missing (and ``create`` is None).
        NotADirectoryError: a component other than the last is not a directory.
        OSError: ELOOP when symlinks nest deeper than 40.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if isinstance(root, str) \
        else os.dup(root)
    try:
        if create is None:
            fd = _openat2_in_root(root_fd, path)
            if fd is not None:
                return fd
        fd, _ = _walk(root_fd, path, create, mode)
        return fd
    finally:
        os.close(root_fd)


def resolve(root, path: str) -> str:
    """The path (inside ``root``, from ``/``) that ``path`` leads to, symlinks resolved inside
    ``root``; missing trailing components are kept as given, as ``secure_join`` keeps them.

    Raises:
        NotADirectoryError, OSError: as ``open_in_root``.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if isinstance(root, str) \
        else os.dup(root)
    try:
        fd, names = _walk(root_fd, path, None, 0, missing_ok=True)
        if fd is not None:
            os.close(fd)
        return "/" + "/".join(names)
    finally:
        os.close(root_fd)


def _walk(root_fd, path, create, mode, missing_ok=False):
    """The walk itself: ``(O_PATH fd or None when missing and missing_ok, component names)``."""
    stack, names = [os.dup(root_fd)], []
    parts = [p for p in path.split("/") if p not in ("", ".")]
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            try:
                fd = _open_or_create(stack[-1], part, None if create is None else ("dir" if parts else create), mode)
            except FileNotFoundError:
                if not missing_ok:
                    raise
                for p in [part] + parts:  # the rest lexically, as secure_join does
                    if p == "..":
                        if names:
                            names.pop()
                    else:
                        names.append(p)
                return None, names
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links resolving %s" % path)
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, "%s: not a directory in %s" % (part, path))
            stack.append(fd)
            names.append(part)
        return os.dup(stack[-1]), names
    finally:
        for fd in stack:
            os.close(fd)


_SYS_OPENAT2 = 437  # the same number on every architecture (the generic table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_openat2_missing = []  # set once the kernel said ENOSYS (or a seccomp filter refused it)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2_in_root(root_fd, path):
    """``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` of ``path``; None: walk it ourselves."""
    if _openat2_missing:
        return None
    how = _OpenHow(flags=os.O_PATH | os.O_CLOEXEC, mode=0, resolve=_RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = ns._libc.syscall(_SYS_OPENAT2, ctypes.c_int(root_fd), ctypes.c_char_p(os.fsencode(path or ".")),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        _openat2_missing.append(err)
        return None
    if err in (errno.EAGAIN, errno.EXDEV, errno.ELOOP):
        # a rename raced the kernel's walk; or a magic link (/proc/1/root), which ours reads
        # as a plain link, inside the root (a real loop is ELOOP there too)
        return None
    raise OSError(err, "%s: %s" % (path, os.strerror(err)))


def _open_or_create(dir_fd, name, kind, mode):
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        if kind is None:
            raise
    try:
        if kind == "dir":
            os.mkdir(name, mode, dir_fd=dir_fd)
        else:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             mode, dir_fd=dir_fd))
    except FileExistsError:
        pass  # made meanwhile: opened (and checked) like any other
    return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def rmtree_at(dir_fd: int, name: str) -> None:
    """Remove directory ``name`` under ``dir_fd`` and all in it, by descriptors (no link followed).

    Raises:
        OSError: ELOOP or ENOTDIR when ``name`` was swapped for a link or a file meanwhile.
    """
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                rmtree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _mount_setattr(fd: int, attr: _MountAttr) -> None:
    ret = ns._libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(fd), ctypes.c_char_p(b""),
                           ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount_setattr: %s" % os.strerror(err))


def make_readonly(fd: int, recursive: bool = True) -> None:
    """Make the mount whose root ``fd`` holds read-only, with every mount under it when ``recursive``.

    Raises:
        OSError: a remount the kernel refuses.
    """
    if recursive:
        try:
            _mount_setattr(fd, _MountAttr(attr_set=_MOUNT_ATTR_RDONLY))
            return
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                raise  # ENOSYS: before 5.12; EPERM: a seccomp filter refusing it
    ns.mount(None, fd_path(fd), None, ns.MS_BIND | ns.MS_REMOUNT | ns.MS_RDONLY)
    if not recursive:
        return
    top = os.readlink(fd_path(fd)).rstrip("/")
    with open("/proc/self/mountinfo") as f:
        points = [_unescape(line.split()[4]) for line in f]
    for point in sorted(set(p for p in points if p.startswith(top + "/")), key=len):
        try:
            sub = os.open(point, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # under a mount made over it meanwhile: not reachable, not writable
        try:
            ns.mount(None, fd_path(sub), None, ns.MS_BIND | ns.MS_REMOUNT | ns.MS_RDONLY)
        finally:
            os.close(sub)


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space) undone."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
