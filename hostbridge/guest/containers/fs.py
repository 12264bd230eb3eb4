"""A container's filesystem from the engine's side: path resolution inside its root, the
``archive`` endpoints (docker cp), ``changes`` (docker diff) and ``export``.

A running container is reached through ``/proc/PID/root`` (its own mount namespace, with its
bind mounts and tmpfs); a stopped one through a temporary overlay mount of its layers.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import posixpath
import stat
import subprocess
import tempfile

from ..errors import InvalidParameter, NotFound
from ..runtime import rootfs, safepath
from ..userns import tar_writer
from ..volumes.mounts import runtime_mounts

# Go's os.FileMode bits, which the docker CLI decodes from X-Docker-Container-Path-Stat
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def resolve_in_root(root, path, follow_last=True):
    """Resolve ``path`` as the container sees it, never leaving ``root`` (symlinks, ``..``).

    Returns the host path. Missing trailing components are allowed (the caller may create them).
    With ``follow_last`` false a final symlink is left unresolved (for stat and copy-out).
    Resolved by descriptors (``safepath``): nothing the container swaps in leads to a host path.
    """
    trimmed = path.rstrip("/")
    head, _, tail = trimmed.rpartition("/")
    with _resolving(path):
        if follow_last or tail in ("", ".", ".."):
            inner = safepath.resolve(root, path)
        else:
            inner = safepath.resolve(root, head).rstrip("/") + "/" + tail
    return root.rstrip("/") + inner


@contextlib.contextmanager
def _resolving(path):
    """docker's errors for a path that cannot be resolved in the container."""
    try:
        yield
    except (NotADirectoryError, FileNotFoundError):
        # a parent that is a file, or a link that cannot be read from outside the container
        # (/proc/self seen from the engine's pid namespace)
        raise NotFound("Could not find the file %s in container" % path) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidParameter("cannot resolve %s in container: too many levels of symbolic links" % path) from None
        raise


def go_mode(st_mode):
    m = stat.S_IMODE(st_mode) & 0o777
    if stat.S_ISDIR(st_mode):
        m |= _GO_DIR
    elif stat.S_ISLNK(st_mode):
        m |= _GO_SYMLINK
    elif stat.S_ISCHR(st_mode):
        m |= _GO_DEVICE | _GO_CHARDEV
    elif stat.S_ISBLK(st_mode):
        m |= _GO_DEVICE
    elif stat.S_ISFIFO(st_mode):
        m |= _GO_PIPE
    elif stat.S_ISSOCK(st_mode):
        m |= _GO_SOCKET
    if st_mode & stat.S_ISUID:
        m |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        m |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        m |= _GO_STICKY
    return m


def path_stat(root, path):
    """The X-Docker-Container-Path-Stat header value for ``path`` (base64 JSON)."""
    host = resolve_in_root(root, path, follow_last=False)
    head, _, tail = path.rstrip("/").rpartition("/")
    if tail in ("", ".", "..") or path.endswith("/"):
        # "dir/" follows a link as write_archive will: a dangling one is a 404 before any stream
        fd, tail = open_dir_in_root(root, path), None
    else:
        fd = _open_parent(root, head, path)  # by descriptor: no stat of a host file through a swapped link
    try:
        st = os.fstat(fd) if tail is None else os.stat(tail, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound("Could not find the file %s in container" % path) from None
    finally:
        os.close(fd)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = resolve_in_root(root, path)[len(root.rstrip("/")):] or "/"
    from ..util import format_time
    import datetime
    info = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": go_mode(st.st_mode),
            "mtime": format_time(datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)),
            "linkTarget": link}
    return base64.b64encode(json.dumps(info).encode()).decode(), host


def write_archive(root, path, out, remap=None):
    """Write a tar of ``path`` (named by its base name, as docker does) to ``out``; with
    ``remap`` (a remapped container's) it carries the container's ids."""
    # a symlink is copied as the link itself, as docker cp does; "dir/" and "dir/." follow it.
    # Everything is reached through descriptors, one component at a time: a running container
    # swapping a directory for a symlink to / mid-copy must not hand us the host's files.
    name = os.path.basename(path.rstrip("/")) or "."
    if path.endswith("/."):
        name = "."
    head, _, tail = path.rstrip("/").rpartition("/")
    if path.endswith("/") or path.endswith("/.") or tail in ("", ".", ".."):
        fd = open_dir_in_root(root, path, "not a directory: %s" % path)
        base = None
    else:
        fd = _open_parent(root, head, path)
        base = tail
        try:
            os.stat(base, dir_fd=fd, follow_symlinks=False)
        except OSError:
            os.close(fd)
            raise NotFound("Could not find the file %s in container" % path) from None
    try:
        with tar_writer(out, remap) as tar:
            if base is None:
                _tar_dir(tar, fd, name)
            else:
                _tar_add_at(tar, fd, base, name)
    finally:
        os.close(fd)


def export_archive(root, out, remap=None):
    """Write the whole filesystem under ``root`` as a tar (``docker export``), by descriptors."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with tar_writer(out, remap) as tar:
            for child in sorted(os.listdir(fd)):
                _tar_add_at(tar, fd, child, child)
    finally:
        os.close(fd)


class _Fd:
    """What ``TarFile.gettarinfo`` needs of a file object: a descriptor to fstat."""

    def __init__(self, fd):
        self.fd = fd
        self.name = "/proc/self/fd/%d" % fd

    def fileno(self):
        return self.fd


def _tar_dir(tar, fd, arcname):
    tar.addfile(tar.gettarinfo("/proc/self/fd/%d" % fd, arcname, fileobj=_Fd(fd)))
    for child in sorted(os.listdir(fd)):
        _tar_add_at(tar, fd, child, arcname + "/" + child)


def _tar_add_at(tar, parent_fd, base, arcname):
    """Add ``base`` (under directory ``parent_fd``) and what it holds; no symlink is followed."""
    path = "/proc/self/fd/%d/%s" % (parent_fd, base)  # the kernel walks only ``base``, unfollowed
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            try:
                _tar_dir(tar, fd, arcname)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent_fd)
            with os.fdopen(fd, "rb") as f:
                ti = tar.gettarinfo(path, arcname, fileobj=f)
                tar.addfile(ti, f if ti.isreg() else None)
        else:
            tar.addfile(tar.gettarinfo(path, arcname))
    except (FileNotFoundError, NotADirectoryError):
        pass  # removed (or swapped) while we walked: docker skips vanished files too
    except OSError as e:
        if e.errno != errno.ELOOP:  # a symlink now where a file or directory was
            raise


def extract_archive(root, path, stream, no_overwrite_dir_non_dir=False, remap=None):
    """Extract a tar stream into directory ``path`` inside the container, refusing escapes."""
    from ..images.tarsafe import extract
    fd = open_dir_in_root(root, path, "extraction point is not a directory: %s" % path)
    try:
        # the directory by its descriptor: a path would be walked again, and a running container
        # may have swapped a component for a symlink to / meanwhile (CVE-2018-15664's race)
        extract(stream, "/proc/self/fd/%d" % fd, whiteouts="keep", remap=remap)  # docker cp keeps .wh. files
    except OSError as e:
        # /proc, /sys, a read-only mount: the container's filesystem refuses, not the engine failing
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
            raise
        raise InvalidParameter("cannot copy into %s in the container: %s" % (path, e.strerror)) from None
    finally:
        os.close(fd)


def _open_parent(root, head, path):
    try:
        return open_dir_in_root(root, head)
    except NotFound:
        raise NotFound("Could not find the file %s in container" % path) from None


def open_dir_in_root(root, path, not_dir=None):
    """Open directory ``path`` as the container sees it, by descriptors inside ``root``
    (``safepath.open_in_root``: openat2's RESOLVE_IN_ROOT, or the same walk done here).

    Returns:
        int: a descriptor of the directory (the caller closes it).
    Raises:
        NotFound: a component is missing, or the last is not a directory and ``not_dir`` (a
            message) is not given; InvalidParameter: ``not_dir``, or the links loop.
    """
    with _resolving(path):
        fd = safepath.open_in_root(root, path)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            if not_dir is None:
                raise NotFound("Could not find the file %s in container" % path)
            raise InvalidParameter(not_dir)
        return os.open(safepath.fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(fd)


@contextlib.contextmanager
def mounted_rootfs(manager, c, writable=False):
    """A host path showing ``c``'s root filesystem for the duration of the block."""
    with c.lock:
        running = c.running and c.state.get("Pid")
        pid = c.state.get("Pid")
    if running:
        yield "/proc/%d/root" % pid
        return
    spec = manager.rootfs_spec(c)
    binds = any(m["type"] == "bind" for m in runtime_mounts(c))
    if spec["driver"] == "vfs" and not binds:
        yield spec["path"]
        return
    target = tempfile.mkdtemp(prefix="hb-mnt-", dir=manager.rootfs_root)
    if spec["driver"] == "vfs":
        # a view of its own: the container's mounts must not show in its real root meanwhile
        cmd = ["mount", "--bind", spec["path"], target]
    elif writable:
        cmd = ["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
               % (":".join(spec["lower"]), spec["upper"], spec["work"]), target]
    else:
        cmd = ["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s" % ":".join([spec["upper"]] + spec["lower"]),
               target]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(target)
        raise InvalidParameter("cannot mount the container's filesystem: %s" % r.stderr.strip())
    try:
        _bind_mounts(target, c, writable)
        yield target
    finally:
        subprocess.run(["umount", "-l", target], capture_output=True)  # the binds under it too
        try:
            os.rmdir(target)
        except OSError:
            pass


def _bind_mounts(target, c, writable):
    """Bind a stopped container's volumes and bind mounts at their destinations in the view at
    ``target`` as its start would (``rootfs.mount_extra``: each destination opened by descriptor
    inside ``target``, read-only ones read-only all the way down), as dockerd does for docker cp.
    A path under a mount is then resolved inside the whole view: a link in a mount stays in
    the container."""
    for m in runtime_mounts(c):  # parents before children
        if m["type"] != "bind":
            continue  # a stopped container's tmpfs holds nothing: the image's path shows
        try:
            rootfs.mount_extra(target, m)
        except OSError as e:
            if writable:  # a copy would land beside the mount, not in it
                raise InvalidParameter("cannot mount %s at %s in the container's filesystem: %s"
                                       % (m["source"], m["destination"], e.strerror or e)) from None
            # a read-only view of a never-started container has no mount point to bind onto


def mount_at(c, path):
    """The mount holding a container path, as dockerd's ``checkIfPathIsInAVolume`` finds it.

    Args:
        c: the container record.
        path: a path inside the container.

    Returns:
        dict: the deepest entry of ``c.data["Mounts"]`` whose destination holds ``path``, or None.
    """
    path = posixpath.normpath(posixpath.join("/", path))
    best = None
    for m in c.data.get("Mounts") or []:
        dest = posixpath.normpath(m.get("Destination") or "/")
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(best["Destination"]):
                best = m
    return best


def check_writable(root, c, path):
    """Refuse a copy into ``path`` where dockerd does: a read-only mount, or (outside any mount)
    a read-only root filesystem; ``path`` resolved in the container first, as dockerd does.

    Raises:
        InvalidParameter: with dockerd's text.
    """
    inner = resolve_in_root(root, path)[len(root.rstrip("/")):] or "/"
    m = mount_at(c, inner)
    if m is not None and not m.get("RW", True):
        raise InvalidParameter("mounted volume is marked read-only")
    if m is None and c.host_config.get("ReadonlyRootfs"):
        raise InvalidParameter("container rootfs is marked read-only")


def changes(upper, lowers):
    """docker diff: [{"Path", "Kind"}] with 0 = changed, 1 = added, 2 = deleted.

    The upper dir (a running container writes there) is walked by descriptors: a directory
    swapped for a symlink meanwhile is not followed, so no host path's names are listed.
    """
    out = []

    def in_lower(rel):
        return any(os.path.lexists(os.path.join(l, rel)) for l in lowers)

    def walk(fd, rel_base):
        for name in sorted(os.listdir(fd)):
            rel = rel_base + name
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append({"Path": "/" + rel, "Kind": 2})
            else:
                out.append({"Path": "/" + rel, "Kind": 0 if in_lower(rel) else 1})
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                        continue  # swapped or removed meanwhile
                    raise
                try:
                    walk(sub, rel + "/")
                finally:
                    os.close(sub)

    top = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        walk(top, "")
    finally:
        os.close(top)
    out.sort(key=lambda x: x["Path"])
    return out
