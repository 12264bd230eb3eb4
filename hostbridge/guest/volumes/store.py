"""Named volumes: ``ROOT/volumes/<name>/_data`` plus ``volume.json`` (docker's Volume shape)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time

from .. import filters as _filters
from ..containers.views import dir_size_of
from ..errors import Conflict, InvalidParameter, NotFound, Unavailable
from ..runtime import ns
from ..util import makedirs, new_id, read_json, write_json

ANON_LABEL = "com.docker.volume.anonymous"
_NAME_OK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_META = "volume.json"


def check_name(name):
    """Refuse names that are not one safe path component (``/``, ``..``, odd characters)."""
    if not isinstance(name, str) or "/" in name or ".." in name or not _NAME_OK.match(name):
        raise InvalidParameter('invalid volume name "%s": it must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and contain '
                               'no "/" or ".."' % name)
    if len(name) > 255:  # one path component: longer and the filesystem refuses it (a 500 before)
        raise InvalidParameter('invalid volume name "%s...": longer than 255 characters' % name[:40])


_LOCAL_OPTS = ("type", "device", "o", "size")  # dockerd's local driver


def check_options(name, opts):
    """The local driver's options checked as dockerd checks them; only a host directory bound
    (``type=none``, ``o=bind``) is supported here: the data then lives in ``device``.

    Returns:
        The options, or None for none.
    Raises:
        InvalidParameter: in dockerd's words (``create NAME: invalid option: "x"``, ``missing
        required option``), or naming what is supported.
    """
    opts = dict(opts or {})
    for k in opts:
        if k not in _LOCAL_OPTS:
            raise InvalidParameter('create %s: invalid option: "%s"' % (name, k))
    if not opts:
        return None
    for k in ("device", "type"):
        if k not in opts:
            raise InvalidParameter('create %s: missing required option: "%s"' % (name, k))
    if "size" in opts:
        raise InvalidParameter("create %s: quota size requested but no quota support" % name)
    flags = (opts.get("o") or "").split(",")
    if opts["type"] != "none" or not {"bind", "rbind"} & set(flags):
        raise InvalidParameter("create %s: volume options type=%s o=%s are not supported by the hostbridge engine: "
                               "only a host directory (type=none, o=bind, device=PATH) is" % (name, opts["type"],
                                                                                               opts.get("o") or ""))
    return opts


def _mounted(path):
    """Whether something is mounted at ``path``: read from mountinfo, because os.path.ismount
    misses a bind mount within one filesystem (same device on both sides)."""
    point = os.path.realpath(path)
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        point = point.replace(char, code)  # mountinfo's escapes
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == point for line in f)


class VolumeStore:
    """The engine's volumes (driver ``local`` only)."""

    def __init__(self, root, owner=None):
        self.dir = makedirs(os.path.join(root, "volumes"), 0o701)
        self._lock = threading.RLock()
        self.owner = owner  # (uid, gid) of a new volume's _data: a remapped engine's root, as dockerd's

    def path(self, name):
        """The host directory the volume's data lives in."""
        return os.path.join(self.dir, name, "_data")

    def _meta(self, name):
        return read_json(os.path.join(self.dir, name, _META))

    def exists(self, name):
        return self._meta(name) is not None

    def create(self, name=None, driver="local", driver_opts=None, labels=None, anonymous=False):
        """Create a volume, or return the existing one of that name (as docker does).

        Returns:
            ``(view, created)``: docker's Volume and whether it is new.
        Raises:
            InvalidParameter: a bad name, driver or driver option.
        """
        if driver not in (None, "", "local"):
            raise InvalidParameter("volume driver %s is not supported by the hostbridge engine (use local)" % driver)
        labels = dict(labels or {})
        if not name:
            name, anonymous = new_id(), True
        check_name(name)
        opts = check_options(name, driver_opts)
        if anonymous:
            labels.setdefault(ANON_LABEL, "")
        with self._lock:
            meta = self._meta(name)
            if meta:
                return self.view(meta), False
            makedirs(self.path(name), 0o755)
            if self.owner:
                os.chown(self.path(name), *self.owner)
            meta = {"Name": name, "Driver": "local", "Labels": labels, "Options": opts, "Scope": "local",
                    "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_json(os.path.join(self.dir, name, _META), meta)
        return self.view(meta), True

    def attach_device(self, name):
        """Bind a ``type=none,o=bind`` volume's device onto its data directory (no-op if done).

        Stays until the volume is removed; the engine re-binds them at start (a reboot drops it).

        Raises:
            InvalidParameter: the device cannot be bound (dockerd's words).
        """
        opts = (self._meta(name) or {}).get("Options") or {}
        data = self.path(name)
        if not opts or _mounted(data):
            return
        flags = ns.MS_BIND | (ns.MS_REC if "rbind" in (opts.get("o") or "").split(",") else 0)
        try:
            ns.mount(opts["device"], data, None, flags)
        except OSError as e:
            why = os.strerror(e.errno)
            raise InvalidParameter("error while mounting volume '%s': failed to mount local volume: mount %s:%s, "
                                   "flags: %#x: %s" % (data, opts["device"], data, flags, why[:1].lower() + why[1:])
                                   ) from None  # Go's lower-case errno text, as dockerd's

    def detach_device(self, name):
        """Unbind a volume's device from its data directory (no-op if not bound).

        Raises:
            Unavailable: it stays mounted (then nothing may delete the directory).
        """
        data = self.path(name)
        if _mounted(data):
            try:
                ns.umount2(data, ns.MNT_DETACH)
            except OSError:
                pass
            if _mounted(data):  # never delete through a mount: the data is the host's
                raise Unavailable("remove %s: cannot unmount its device from %s" % (name, data))

    def view(self, meta, size=False):
        v = {"CreatedAt": meta["CreatedAt"], "Driver": meta["Driver"], "Labels": meta.get("Labels") or None,
             "Mountpoint": self.path(meta["Name"]), "Name": meta["Name"], "Options": meta.get("Options"),
             "Scope": "local"}
        if size:
            v["UsageData"] = {"Size": dir_size_of(self.path(meta["Name"])), "RefCount": -1}
        return v

    def get(self, name):
        """docker's Volume. Raises NotFound: ``get NAME: no such volume``."""
        meta = self._meta(name) if isinstance(name, str) and "/" not in name and name not in (".", "..") else None
        if not meta:
            raise NotFound("get %s: no such volume" % name)
        return self.view(meta)

    def all(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            meta = self._meta(name)
            if meta:
                out.append(meta)
        return out

    def remove(self, name, users=()):
        """Delete a volume and its data.

        Args:
            users: ids of containers that mount it (non-empty → Conflict).
        """
        self.get(name)
        if users:
            raise Conflict("remove %s: volume is in use - [%s]" % (name, ", ".join(sorted(users))))
        with self._lock:
            self.detach_device(name)
            trash = os.path.join(self.dir, ".trash-" + new_id()[:12])
            os.rename(os.path.join(self.dir, name), trash)  # gone from listings at once, then deleted
            shutil.rmtree(trash, ignore_errors=True)

    def is_anonymous(self, name):
        meta = self._meta(name) or {}
        return ANON_LABEL in (meta.get("Labels") or {})

    def prune(self, filters, in_use):
        """``POST /volumes/prune``: unused anonymous volumes (all unused ones with ``all=true``)."""
        f = filters or {}
        _filters.check_names(f, ("label", "label!", "all"))
        everything = (f.get("all") or ["false"])[0] in ("1", "true")
        deleted, reclaimed = [], 0
        for meta in self.all():
            name, labels = meta["Name"], meta.get("Labels") or {}
            if name in in_use or (not everything and ANON_LABEL not in labels):
                continue
            if not _filters.labels_match(labels, f):
                continue
            reclaimed += dir_size_of(self.path(name))
            self.remove(name)
            deleted.append(name)
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def list(self, filters, in_use):
        """``GET /volumes``: ``{"Volumes": [...], "Warnings": []}``."""
        f = filters or {}
        _filters.check_names(f, ("name", "driver", "label", "dangling"))
        for v in f.get("dangling", []):
            if v not in ("1", "0", "true", "false"):
                raise InvalidParameter("invalid filter 'dangling=%s'" % v)
        out = []
        for meta in self.all():
            if "name" in f and not any(x in meta["Name"] for x in f["name"]):
                continue
            if "driver" in f and meta["Driver"] not in f["driver"]:
                continue
            if "dangling" in f and (f["dangling"][0] in ("1", "true")) == (meta["Name"] in in_use):
                continue
            if not _filters.label_match(meta.get("Labels"), f.get("label")):
                continue
            out.append(self.view(meta))
        return {"Volumes": out, "Warnings": []}
