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
import stat
import subprocess
import tarfile
import tempfile

from ..errors import InvalidParameter, NotFound
from ..runtime.rootfs import secure_join

# Go's os.FileMode bits, which the docker CLI decodes from X-Docker-Container-Path-Stat
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def resolve_in_root(root, path, follow_last=True):
    """Resolve ``path`` as the container sees it, never leaving ``root`` (symlinks, ``..``).

    Returns the host path. Missing trailing components are allowed (the caller may create them).
    With ``follow_last`` false a final symlink is left unresolved (for stat and copy-out).
    """
    trimmed = path.rstrip("/")
    head, _, tail = trimmed.rpartition("/")
    try:
        if follow_last or tail in ("", ".", ".."):
            return secure_join(root, path)
        return os.path.join(secure_join(root, head), tail)
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
    try:
        st = os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound("Could not find the file %s in container" % path)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = resolve_in_root(root, path)[len(root.rstrip("/")):] or "/"
    from ..util import format_time
    import datetime
    info = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": go_mode(st.st_mode),
            "mtime": format_time(datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)),
            "linkTarget": link}
    return base64.b64encode(json.dumps(info).encode()).decode(), host


def write_archive(root, path, out):
    """Write a tar of ``path`` (named by its base name, as docker does) to ``out``."""
    # a symlink is copied as the link itself, as docker cp does; "dir/" and "dir/." follow it
    host = resolve_in_root(root, path, follow_last=path.endswith("/") or path.endswith("/."))
    if not os.path.lexists(host):
        raise NotFound("Could not find the file %s in container" % path)
    name = os.path.basename(path.rstrip("/")) or "."
    if path.endswith("/."):
        name = "."
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(host, arcname=name, recursive=True)


def extract_archive(root, path, stream, no_overwrite_dir_non_dir=False):
    """Extract a tar stream into directory ``path`` inside the container, refusing escapes."""
    from ..images.tarsafe import extract
    host = resolve_in_root(root, path)
    if not os.path.isdir(host):
        if os.path.exists(host):
            raise InvalidParameter("extraction point is not a directory: %s" % path)
        raise NotFound("Could not find the file %s in container" % path)
    try:
        extract(stream, host, whiteouts="apply")
    except OSError as e:
        # /proc, /sys, a read-only mount: the container's filesystem refuses, not the engine failing
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
            raise
        raise InvalidParameter("cannot copy into %s in the container: %s" % (path, e.strerror)) from None


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
    if spec["driver"] == "vfs":
        yield spec["path"]
        return
    target = tempfile.mkdtemp(prefix="hb-mnt-", dir=manager.rootfs_root)
    if writable:
        opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (":".join(spec["lower"]), spec["upper"], spec["work"])
    else:
        opts = "lowerdir=%s" % ":".join([spec["upper"]] + spec["lower"])
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, target], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(target)
        raise InvalidParameter("cannot mount the container's filesystem: %s" % r.stderr.strip())
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", target], capture_output=True)
        try:
            os.rmdir(target)
        except OSError:
            pass


def changes(upper, lowers):
    """docker diff: [{"Path", "Kind"}] with 0 = changed, 1 = added, 2 = deleted."""
    out = []

    def in_lower(rel):
        return any(os.path.lexists(os.path.join(l, rel)) for l in lowers)

    for base, dirs, files in os.walk(upper):
        rel_base = os.path.relpath(base, upper)
        for name in sorted(dirs) + sorted(files):
            full = os.path.join(base, name)
            rel = os.path.normpath(os.path.join(rel_base, name))
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append({"Path": "/" + rel, "Kind": 2})
            elif in_lower(rel):
                out.append({"Path": "/" + rel, "Kind": 0})
            else:
                out.append({"Path": "/" + rel, "Kind": 1})
    out.sort(key=lambda x: x["Path"])
    return out
