"""The containers of a remapped engine (``--userns-remap``): dockerd's refusals, config.json's
"userns", and the owner of what the engine makes for a container (its root's parent dir, the
upper and init layers, /etc/hostname, hosts, resolv.conf)."""

from __future__ import annotations

import os

from ..errors import Conflict, InvalidParameter
from ..userns import shift_tree


def remap_for(remap, hc):
    """The engine's Remap for a container, or None: no remap, or ``--userns host``."""
    if remap is None or (hc.get("UsernsMode") or "") == "host":
        return None
    return remap


def check_create(remap, hc) -> None:
    """Refuse what dockerd refuses under remap unless the container asks for ``--userns host``.

    Raises:
        InvalidParameter: dockerd's message.
    """
    if remap_for(remap, hc) is None:
        return
    if hc.get("Privileged"):
        raise InvalidParameter("privileged mode is incompatible with user namespaces.  You must run the "
                               "container in the host namespace when running privileged mode")
    if (hc.get("NetworkMode") or "") == "host":
        raise InvalidParameter("cannot share the host's network namespace when user namespaces are enabled")
    if (hc.get("PidMode") or "") == "host":
        raise InvalidParameter("cannot share the host PID namespace when user namespaces are enabled")


def runtime_spec(remap, hc, lookup_pid):
    """config.json's "userns": None (the host's), ``{"path"}`` (a joined container's: sharing a
    namespace with X means sharing X's user namespace, as dockerd does) or the new one's maps."""
    remap = remap_for(remap, hc)
    if remap is None:
        return None
    for field in ("NetworkMode", "PidMode", "IpcMode", "UTSMode"):
        mode = hc.get(field) or ""
        if mode.startswith("container:"):
            path = "/proc/%d/ns/user" % lookup_pid(mode.split(":", 1)[1])
            if os.stat(path).st_ino == os.stat("/proc/self/ns/user").st_ino:
                return None  # X runs with --userns host: so does whoever joins it
            return {"path": path}
    return remap.runtime_spec()


_MARK = "remap"  # in the container's rootfs dir: the range its files are owned by ("" for none)


def mark(remap, rootfs_dir: str) -> None:
    """Record which ids the container's files were made for (None: the host's)."""
    with open(os.path.join(rootfs_dir, _MARK), "w") as f:
        f.write(remap.dir_name if remap is not None else "")


def check_mark(remap, rootfs_dir: str, name: str) -> None:
    """Refuse to start a container whose files were made for other ids than the engine's now
    (the engine restarted with another --userns-remap): dockerd keeps a data root per range.

    Raises:
        Conflict: names the container and the option it needs.
    """
    try:
        with open(os.path.join(rootfs_dir, _MARK)) as f:
            made = f.read().strip()
    except FileNotFoundError:
        made = ""  # made before the engine knew remapping: the host's ids
    now = remap.dir_name if remap is not None else ""
    if made != now:
        raise Conflict("container %s was created %s: restart the engine %s, or remove the container"
                       % (name, "for the remapped range %s" % made if made else "without --userns-remap",
                          "with --userns-remap for that range" if made else "without --userns-remap"))


def own_rootfs(remap, rootfs_dir: str, driver: str) -> None:
    """Give the remapped root what a container's root needs: a searchable parent dir (the
    runtime reaches the root through it once in the user namespace), its own upper dir (the
    image's top directory shows as root's), and the init layer's (or vfs rootfs's) files."""
    os.chmod(rootfs_dir, 0o711)
    if driver == "vfs":
        shift_tree(os.path.join(rootfs_dir, "rootfs"), remap)
        return
    os.chown(os.path.join(rootfs_dir, "upper"), remap.root_uid, remap.root_gid)
    init = os.path.join(rootfs_dir, "init")
    if os.path.isdir(init):
        shift_tree(init, remap)


def own_files(remap, paths) -> None:
    """chown the engine's files bound into the container (hostname, hosts, resolv.conf) to its root."""
    for p in paths:
        if p and os.path.exists(p):
            os.chown(p, remap.root_uid, remap.root_gid)
