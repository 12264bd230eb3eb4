"""User-namespace remapping (dockerd's ``--userns-remap``): container root is a subordinate uid.

``--userns-remap default`` uses the user ``hostbridge-remap`` (dockerd's ``dockremap``), created
with ``useradd --system`` when missing, and its ``/etc/subuid`` / ``/etc/subgid`` ranges, which
are added (65536 ids from 100000 or past the last range, dockerd's rule) when it has none.
``USER[:GROUP]`` or ``UID[:GID]`` names an existing user whose ranges must already be there.
Container ids 0… map onto the ranges in file order, as dockerd maps them.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import stat
import subprocess

from .errors import InvalidParameter

DEFAULT_USER = "hostbridge-remap"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
RANGE_START = 100000  # dockerd's first subordinate id
RANGE_SIZE = 65536


class Remap:
    """The id maps of a remapped engine: ``uid_map``/``gid_map`` as [[inside, outside, count]]."""

    def __init__(self, user: str, group: str, uid_map: list, gid_map: list):
        self.user, self.group = user, group
        self.uid_map, self.gid_map = uid_map, gid_map

    @property
    def root_uid(self) -> int:
        """The host uid of container root."""
        return self.uid_map[0][1]

    @property
    def root_gid(self) -> int:
        return self.gid_map[0][1]

    @property
    def dir_name(self) -> str:
        """dockerd's per-range name, ``UID.GID`` (its ``/var/lib/docker/100000.100000``)."""
        return "%d.%d" % (self.root_uid, self.root_gid)

    def host_uid(self, uid: int) -> int:
        """The host uid of container uid ``uid`` (overflow 65534's host id when unmapped)."""
        return _to_host(self.uid_map, uid)

    def host_gid(self, gid: int) -> int:
        return _to_host(self.gid_map, gid)

    def container_uid(self, host_uid: int) -> int:
        """The container uid a host uid shows as (65534, the overflow id, when unmapped)."""
        return _to_container(self.uid_map, host_uid)

    def container_gid(self, host_gid: int) -> int:
        return _to_container(self.gid_map, host_gid)

    def runtime_spec(self) -> dict:
        """config.json's "userns" for a container of its own user namespace."""
        return {"uid_map": self.uid_map, "gid_map": self.gid_map}

    def security_option(self) -> str:
        return "name=userns"


def _to_host(idmap, cid):
    for inside, outside, count in idmap:
        if inside <= cid < inside + count:
            return outside + cid - inside
    return _to_host(idmap, 65534) if cid != 65534 else idmap[0][1] + 65534


def _to_container(idmap, hid):
    for inside, outside, count in idmap:
        if outside <= hid < outside + count:
            return inside + hid - outside
    return 65534


def parse_option(value: str) -> tuple:
    """``"default" | "USER[:GROUP]" | "UID[:GID]"`` → ``(user, group or "")``.

    Raises:
        InvalidParameter: an empty or malformed value.
    """
    if not isinstance(value, str) or not value.strip() or value.count(":") > 1:
        raise InvalidParameter("invalid --userns-remap %r: use default, USER, USER:GROUP, UID or UID:GID" % (value,))
    if value == "default":
        return DEFAULT_USER, DEFAULT_USER
    user, _, group = value.partition(":")
    if not user or (_ and not group):
        raise InvalidParameter("invalid --userns-remap %r: use default, USER, USER:GROUP, UID or UID:GID" % (value,))
    return user, group


def read_ranges(path: str, names) -> list:
    """The ranges ``[(start, count)]`` that ``path`` (subuid format) gives any of ``names``."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in names:
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            out.append((start, count))
    return out


def free_start(path: str) -> int:
    """Where a new range of ``path`` goes: RANGE_START, or past the last range that reaches it."""
    end = RANGE_START
    try:
        with open(path) as f:
            for line in f.read().splitlines():
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
    except FileNotFoundError:
        pass
    return end


def add_range(path: str, name: str) -> tuple:
    """Append ``name:START:65536`` to ``path`` (under a lock); returns ``(start, count)``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        existing = read_ranges(path, {name})
        if existing:
            return existing[0]
        start = free_start(path)
        with open(path, "rb") as f:
            data = f.read()
        os.write(fd, (b"" if not data or data.endswith(b"\n") else b"\n") + b"%s:%d:%d\n" % (
            name.encode(), start, RANGE_SIZE))
        return start, RANGE_SIZE
    finally:
        os.close(fd)


def _ensure_user(name: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> None:
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    if not shutil.which("useradd"):  # a minimal guest (ours has no passwd package): add the lines
        _append_system_user(name, passwd, group)
        return
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false", "--user-group", name],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise InvalidParameter("--userns-remap default: cannot create the user %s: %s"
                               % (name, (r.stderr or r.stdout).strip().splitlines()[-1:] or "useradd failed"))


def _append_system_user(name: str, passwd: str, group: str) -> None:
    """A system user and group ``name`` (the highest id below 1000 free in both files), no login."""
    fd = os.open(passwd, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        used = set()
        for path in (passwd, group):
            with open(path) as f:
                for line in f:
                    parts = line.split(":")
                    if len(parts) > 2 and parts[2].isdigit():
                        used.add(int(parts[2]))
        free = next((i for i in range(999, 99, -1) if i not in used), None)
        if free is None:
            raise InvalidParameter("--userns-remap default: no free system id below 1000 for the user %s" % name)
        with open(group, "a") as f:
            f.write("%s:x:%d:\n" % (name, free))
        os.write(fd, b"%s:x:%d:%d::/nonexistent:/bin/false\n" % (name.encode(), free, free))
    finally:
        os.close(fd)


def _idmap(ranges) -> list:
    out, inside = [], 0
    for start, count in ranges:
        out.append([inside, start, count])
        inside += count
    return out


def load(value: str, subuid: str = SUBUID, subgid: str = SUBGID) -> Remap:
    """The Remap for an ``--userns-remap`` value, creating dockerd's default user and ranges.

    Raises:
        InvalidParameter: a bad value, an unknown user or group, or no subordinate range (one line).
    """
    user, group = parse_option(value)
    if user == DEFAULT_USER:
        _ensure_user(user)
    names, gnames = {user}, {group or user}
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        names |= {pw.pw_name, str(pw.pw_uid)}
    except (KeyError, ValueError):
        raise InvalidParameter("--userns-remap %s: no such user %r (create it, or use default)" % (value, user))
    if group:
        try:
            gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except (KeyError, ValueError):
            raise InvalidParameter("--userns-remap %s: no such group %r" % (value, group))
        gnames = {gr.gr_name, str(gr.gr_gid)}
    else:
        gnames = set(names)
    uids, gids = read_ranges(subuid, names), read_ranges(subgid, gnames)
    if user == DEFAULT_USER:
        uids = uids or [add_range(subuid, pw.pw_name)]
        gids = gids or [add_range(subgid, group or pw.pw_name)]
    for ranges, path, who in ((uids, subuid, user), (gids, subgid, group or user)):
        if not ranges:
            raise InvalidParameter("--userns-remap %s: %s has no range for %s (add a line %s:%d:%d)"
                                   % (value, path, who, who, RANGE_START, RANGE_SIZE))
    return Remap(pw.pw_name, group or pw.pw_name, _idmap(uids), _idmap(gids))


def copy_shifted(src: str, dst: str, remap: Remap) -> None:
    """Copy the tree ``src`` to the new dir ``dst``, each entry owned by the host ids its ids map
    to under ``remap``; modes (set-id bits too), times, xattrs (overlay's opaque markers),
    whiteouts (char 0/0) and hard links within the tree are kept. Symlinks are not followed.
    """
    linked, dir_times = {}, []

    def one(s_path, d_path, st):
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            os.mkdir(d_path, 0o700)
            dir_times.append((d_path, st))
        elif kind == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in linked:
                os.link(linked[key], d_path)
                return
            linked[key] = d_path
            shutil.copyfile(s_path, d_path, follow_symlinks=False)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(s_path), d_path)
        else:  # devices, fifos, sockets: whiteouts are char 0/0
            os.mknod(d_path, st.st_mode, st.st_rdev)
        for name in os.listxattr(s_path, follow_symlinks=False):
            try:
                os.setxattr(d_path, name, os.getxattr(s_path, name, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                if kind != stat.S_IFLNK:  # user.* cannot sit on a symlink: nothing to keep there
                    raise
        os.lchown(d_path, remap.host_uid(st.st_uid), remap.host_gid(st.st_gid))
        if kind != stat.S_IFLNK:
            os.chmod(d_path, stat.S_IMODE(st.st_mode))  # after the chown, which clears set-id bits
        if kind != stat.S_IFDIR:
            os.utime(d_path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    one(src, dst, os.lstat(src))
    for base, dirs, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(base, src))
        for name in dirs + files:
            one(os.path.join(base, name), os.path.join(out, name), os.lstat(os.path.join(base, name)))
    for d_path, st in reversed(dir_times):  # children changed their dir's mtime: set it last
        os.utime(d_path, ns=(st.st_atime_ns, st.st_mtime_ns))


def shift_tree(path: str, remap: Remap, back: bool = False) -> None:
    """chown every entry under ``path`` (itself included) from host ids to remapped host ids
    (``back``: the other way), keeping set-id bits (a chown clears them). Symlinks are not
    followed."""
    uid_of, gid_of = (remap.container_uid, remap.container_gid) if back else (remap.host_uid, remap.host_gid)
    seen = set()  # an inode with several names (COPY's hard links) is chown'd once

    def one(p):
        st = os.lstat(p)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
        os.lchown(p, uid_of(st.st_uid), gid_of(st.st_gid))
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(st.st_mode):
            os.chmod(p, stat.S_IMODE(st.st_mode))

    one(path)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            one(os.path.join(base, name))


_ContainerIdsTar = None  # made by _container_ids_tar


def _container_ids_tar():
    """The tar writer class that records host ids as a remapped container sees them (made at the
    first use: a start imports this module, and tarfile is a fair part of a start in an emulated
    guest)."""
    global _ContainerIdsTar
    if _ContainerIdsTar is None:
        import tarfile

        class ContainerIdsTar(tarfile.TarFile):
            remap = None

            def addfile(self, tarinfo, fileobj=None):
                if self.remap is not None:
                    tarinfo.uid = self.remap.container_uid(tarinfo.uid)
                    tarinfo.gid = self.remap.container_gid(tarinfo.gid)
                    tarinfo.uname = tarinfo.gname = ""  # the host's names of subordinate ids mean nothing
                return super().addfile(tarinfo, fileobj)
        _ContainerIdsTar = ContainerIdsTar
    return _ContainerIdsTar


def tar_writer(out, remap=None):
    """A streaming PAX tar writer (a tarfile.TarFile) on ``out``; with ``remap`` its entries carry the container's
    ids (``docker cp`` out, ``export``, ``commit`` of a remapped container), as dockerd's do."""
    import tarfile
    tar = _container_ids_tar().open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
    tar.remap = remap
    return tar
