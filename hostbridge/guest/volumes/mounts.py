"""A container's mounts: ``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from`` and image VOLUMEs.

At create, everything is resolved once into the record's ``Mounts`` (docker's inspect shape;
named volumes created and seeded from the image); at start, ``runtime_mounts`` turns the record
into the runtime bundle's ``mounts`` (see docs/internals.md).
"""

from __future__ import annotations

import logging
import os
import posixpath

from ..errors import GuestError, InvalidParameter, NotFound
from . import seed
from .hostpaths import load_map, split_bind, translate
from .store import VolumeStore

log = logging.getLogger("hostbridge.volumes")

_BIND_OPTS = {"ro", "rw", "z", "Z", "nocopy", "rprivate", "private", "rshared", "shared", "rslave", "slave",
              "consistent", "cached", "delegated"}
_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def _dest(path, spec):
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidParameter("invalid mount config: destination %r must be an absolute path (%s)" % (path, spec))
    return posixpath.normpath(path)


def parse_bind(spec, path_map=None):
    """A ``-v`` string → ``{"src", "dst", "rw", "mode", "nocopy", "propagation"}``.

    ``src`` is an absolute host path or a volume name; ``-v /ctr`` alone is an anonymous volume.
    A Windows host's path (``C:\\Users\\a:/a``) is translated through ``path_map``
    (``hostpaths.translate``: a 400 when it is outside every share).
    """
    parts = split_bind(spec, windows=bool(path_map))
    if len(parts) == 1:
        return {"src": "", "dst": _dest(parts[0], spec), "rw": True, "mode": "", "nocopy": False, "propagation": ""}
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidParameter("invalid volume specification: '%s' (expected SOURCE:DEST[:OPTIONS])" % spec)
    opts = [o for o in (parts[2].split(",") if len(parts) == 3 else []) if o]
    bad = [o for o in opts if o not in _BIND_OPTS]
    if bad:
        raise InvalidParameter("invalid volume specification: '%s': unknown option %s" % (spec, ",".join(bad)))
    prop = next((o for o in opts if o in _PROPAGATIONS), "")
    return {"src": translate(parts[0], path_map or {}), "dst": _dest(parts[1], spec), "rw": "ro" not in opts,
            "mode": ",".join(o for o in opts if o not in ("nocopy",)), "nocopy": "nocopy" in opts, "propagation": prop}


class VolumeManager:
    """Volume API operations and the container hooks that resolve mounts.

    Args:
        store: the VolumeStore.
        containers: the ContainerManager (for ``--volumes-from`` and in-use checks).
    """

    def __init__(self, root, containers):
        remap = containers.remap
        self.store = VolumeStore(root, (remap.root_uid, remap.root_gid) if remap else None)
        self.containers = containers
        self.root = root

    def restore(self):
        """At engine start: bind the devices of ``o=bind`` volumes again (gone after a reboot)."""
        for meta in self.store.all():
            if meta.get("Options"):
                try:
                    self.store.attach_device(meta["Name"])
                except GuestError as e:
                    log.warning("volume %s: %s", meta["Name"], e)

    def shutdown(self):
        """At engine stop: unbind those devices, so that no one deletes a host directory's data
        through the engine's state (running containers keep their own view of it)."""
        for meta in self.store.all():
            if meta.get("Options"):
                try:
                    self.store.detach_device(meta["Name"])
                except GuestError as e:
                    log.warning("volume %s: %s", meta["Name"], e)

    def users(self, name):
        """Ids of containers whose mounts name volume ``name``."""
        return {c.id for c in self.containers.store.all()
                for m in c.data.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name") == name}

    def in_use(self):
        return {m.get("Name") for c in self.containers.store.all() for m in c.data.get("Mounts") or []
                if m.get("Type") == "volume"}

    def disk_usage(self):
        """``GET /system/df``'s Volumes: each volume with ``UsageData`` (size, containers using it)."""
        refs = {}
        for c in self.containers.store.all():
            for m in c.data.get("Mounts") or []:
                if m.get("Type") == "volume":
                    refs[m.get("Name")] = refs.get(m.get("Name"), 0) + 1
        out = []
        for meta in self.store.all():
            v = self.store.view(meta, size=True)
            v["UsageData"]["RefCount"] = refs.get(meta["Name"], 0)
            out.append(v)
        return out

    # ---- hooks ------------------------------------------------------------------------------
    def on_create(self, c, body=None):
        """Resolve the container's mounts into ``c.data["Mounts"]``; create and seed volumes.

        Raises:
            InvalidParameter: a malformed spec, a duplicate destination, a missing ``--mount``
            bind source; NotFound: a ``--volumes-from`` container that does not exist.
        """
        hc, cfg = c.host_config, c.config
        mounts = {}
        explicit = set()

        def put(m, from_user=True):
            if from_user and m["Destination"] in explicit:
                raise InvalidParameter("Duplicate mount point: %s" % m["Destination"])
            if from_user:
                explicit.add(m["Destination"])
            mounts[m["Destination"]] = m

        for ref in hc.get("VolumesFrom") or []:
            name, _, mode = ref.partition(":")
            try:
                other = self.containers.get(name)
            except NotFound:
                raise NotFound("No such container: %s (--volumes-from)" % name) from None
            for m in other.data.get("Mounts") or []:
                if m.get("Type") in ("bind", "volume"):
                    m = dict(m)
                    if mode in ("ro", "rw"):
                        m["RW"] = mode == "rw"
                    mounts[m["Destination"]] = m
        created = []
        path_map = load_map(self.root)  # the host's Windows shares, read per create: `up` may rewrite it
        for spec in hc.get("Binds") or []:
            b = parse_bind(spec, path_map)
            if b["src"].startswith("/"):
                if not os.path.lexists(b["src"]):  # a file is bound as it is (-v /x/tool:/tool)
                    os.makedirs(b["src"], exist_ok=True)  # docker creates a missing -v source
                put({"Type": "bind", "Source": b["src"], "Destination": b["dst"], "Mode": b["mode"], "RW": b["rw"],
                     "Propagation": b["propagation"] or "rprivate"})
            else:
                put(self._volume(b["src"], b["dst"], b["rw"], b["mode"] or "z", None, b["nocopy"], created))
        for m in hc.get("Mounts") or []:
            put(self._mount(m, created, path_map))
        for dst in sorted(cfg.get("Volumes") or {}):
            d = _dest(dst, dst)
            if d not in mounts:
                put(self._volume("", d, True, "", None, False, created), from_user=False)
        c.data["Mounts"] = [mounts[d] for d in sorted(mounts)]
        self._seed(c, created)

    def _volume(self, name, dst, rw, mode, labels, nocopy, created):
        v, new = self.store.create(name or None, labels=labels, anonymous=not name)
        self.store.attach_device(v["Name"])  # a type=none,o=bind volume: its host directory
        # dockerd logs a create for every volume a container names, new or not
        self.containers.events.emit("volume", "create", v["Name"], {"driver": "local"})
        created.append((v["Name"], dst, nocopy))
        return {"Type": "volume", "Name": v["Name"], "Source": v["Mountpoint"], "Destination": dst,
                "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""}

    def _mount(self, m, created, path_map=None):
        if not isinstance(m, dict):
            raise InvalidParameter("invalid mount config: each mount must be an object")
        typ, target = m.get("Type"), m.get("Target")
        dst = _dest(target, "--mount type=%s" % typ)
        rw = not m.get("ReadOnly")
        if typ == "bind":
            src = translate(m.get("Source") or "", path_map or {})
            if not src.startswith("/"):
                raise InvalidParameter('invalid mount config for type "bind": invalid mount path: \'%s\' mount path must be absolute' % src)
            if not os.path.exists(src):
                raise InvalidParameter('invalid mount config for type "bind": bind source path does not exist: %s' % src)
            prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
            return {"Type": "bind", "Source": src, "Destination": dst, "Mode": "", "RW": rw, "Propagation": prop}
        if typ == "volume":
            opts = m.get("VolumeOptions") or {}
            if (opts.get("DriverConfig") or {}).get("Name") not in (None, "", "local"):
                raise InvalidParameter("volume driver %s is not supported (use local)" % opts["DriverConfig"]["Name"])
            out = self._volume(m.get("Source") or "", dst, rw, "z", opts.get("Labels"), bool(opts.get("NoCopy")), created)
            out["Mode"] = "z"
            return out
        if typ == "tmpfs":
            if m.get("Source"):
                raise InvalidParameter('invalid mount config for type "tmpfs": source must not be specified')
            tmpfs_options(m.get("TmpfsOptions") or {})  # refuse bad options at create, not at start
            return {"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": rw, "Propagation": ""}
        raise InvalidParameter('invalid mount config: mount type "%s" is not supported (bind, volume, tmpfs)' % typ)

    def _seed(self, c, created):
        """Copy the image's content at each new, empty volume's destination into it."""
        lowers = None
        for name, dst, nocopy in created:
            path = self.store.path(name)
            if nocopy or os.listdir(path):
                continue
            if lowers is None:
                spec = self.containers.rootfs_spec(c)
                lowers = spec.get("lower") or [spec["path"]]
            seed.copy_from_layers(lowers, dst, path)

    def on_start(self, c, pid):
        """A ``volume mount`` event per volume, as dockerd's (the runtime mounts what
        ``runtime_mounts`` lists)."""
        for m in self._volumes_of(c):
            self.containers.events.emit("volume", "mount", m["Name"], {
                "container": c.id, "destination": m.get("Destination", ""), "driver": m.get("Driver") or "local",
                "propagation": m.get("Propagation") or "", "read/write": "true" if m.get("RW") else "false"})

    def on_stop(self, c):
        """A ``volume unmount`` event per volume (volumes outlive their containers)."""
        for m in self._volumes_of(c):
            self.containers.events.emit("volume", "unmount", m["Name"], {"container": c.id,
                                                                         "driver": m.get("Driver") or "local"})

    @staticmethod
    def _volumes_of(c):
        return [m for m in c.data.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]

    def on_remove(self, c, volumes=False):
        """With ``volumes`` (``rm -v``, ``--rm``): remove the container's anonymous volumes."""
        if not volumes:
            return
        for m in c.data.get("Mounts") or []:
            name = m.get("Name")
            if m.get("Type") == "volume" and name and self.store.is_anonymous(name):
                if not (self.users(name) - {c.id}):
                    try:
                        self.store.remove(name)
                    except NotFound:
                        continue
                    self.containers.events.emit("volume", "destroy", name, {"driver": "local"})


def tmpfs_options(opts):
    """``TmpfsOptions`` (``SizeBytes``, ``Mode``) → mount data options."""
    out = []
    try:
        if opts.get("SizeBytes"):
            out.append("size=%d" % int(opts["SizeBytes"]))
        if opts.get("Mode"):
            out.append("mode=%o" % int(opts["Mode"]))
    except (TypeError, ValueError):
        raise InvalidParameter("invalid tmpfs options: %r" % (opts,)) from None
    return out


def runtime_mounts(c):
    """The runtime bundle's ``mounts`` for a container record (parents before children)."""
    out = []
    tmpfs_opts = {_dest(m.get("Target"), "--mount"): tmpfs_options(m.get("TmpfsOptions") or {})
                  for m in c.host_config.get("Mounts") or [] if isinstance(m, dict) and m.get("Type") == "tmpfs"}
    for m in c.data.get("Mounts") or []:
        ro = "rw" if m.get("RW", True) else "ro"
        if m["Type"] in ("bind", "volume"):
            opts = ["rbind", ro]
            if m.get("Propagation"):
                opts.append(m["Propagation"])
            out.append({"type": "bind", "source": m["Source"], "destination": m["Destination"], "options": opts})
        elif m["Type"] == "tmpfs":
            opts = list(tmpfs_opts.get(m["Destination"]) or [])
            if ro == "ro":
                opts.append("ro")
            out.append({"type": "tmpfs", "source": "tmpfs", "destination": m["Destination"], "options": opts})
    for dest, opts in (c.host_config.get("Tmpfs") or {}).items():
        out.append({"type": "tmpfs", "source": "tmpfs", "destination": _dest(dest, "--tmpfs " + dest),
                    "options": [o for o in (opts or "").split(",") if o]})
    out.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return out
