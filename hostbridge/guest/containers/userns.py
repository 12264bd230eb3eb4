"""The containers of a remapped engine (``--userns-remap``): dockerd's refusals, config.json's
"userns", and the owner of what the engine makes for a container (its root's parent dir, the
upper and init layers, /etc/hostname, hosts, resolv.conf)."""

from __future__ import annotations

import os

from ..errors import InvalidParameter
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
