"""Build the runtime bundle (``bundle/config.json``) of a container from its record."""

from __future__ import annotations

import os

from ..util import makedirs, write_json
from ..volumes.mounts import runtime_mounts
from .config import DEFAULT_SHM_SIZE, seccomp_spec
from .logs import log_limits
from .resources import cgroup_limits


def namespaces_for(hc, lookup_pid):
    """The runtime's namespace spec from a HostConfig. ``lookup_pid(ref)`` → a running pid."""
    ns = {"net": "new", "pid": "new", "ipc": "new", "uts": "new"}
    nm = hc.get("NetworkMode") or "bridge"
    if nm == "host":
        ns["net"] = "host"
    elif nm == "none":
        ns["net"] = "none"
    elif nm.startswith("container:"):
        ns["net"] = "/proc/%d/ns/net" % lookup_pid(nm.split(":", 1)[1])
    for key, field in (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode")):
        mode = hc.get(field) or ""
        if mode == "host":
            ns[key] = "host"
        elif mode.startswith("container:"):
            ns[key] = "/proc/%d/ns/%s" % (lookup_pid(mode.split(":", 1)[1]), key)
    return ns


# The runtime makes these itself; the console and the ptmx are the container's own.
_OWN_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                "/dev/console", "/dev/ptmx"}
_SKIP_DEV_DIRS = ("/dev/pts", "/dev/shm", "/dev/mqueue")


def host_devices(dev="/dev"):
    """Bind mounts giving a --privileged container every device node of the host, as docker's
    privileged mode does (the shim allows every bound device node in the device cgroup)."""
    import stat
    mounts = []
    for base, dirs, files in os.walk(dev):
        dirs[:] = [d for d in dirs if os.path.join(base, d) not in _SKIP_DEV_DIRS]
        for name in sorted(files):
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and path not in _OWN_DEVICES:
                mounts.append({"type": "bind", "source": path, "destination": path, "options": ["bind", "rw"]})
    return mounts


def write_bundle(c, rootfs, lookup_pid, init_path="", extra_env=(), userns=None):
    """Write ``c``'s bundle config; returns the bundle dir.

    Args:
        c: the container record.
        rootfs: config.json's "rootfs" (the manager's ``rootfs_spec``).
        lookup_pid: ``lookup_pid(ref)`` → the pid of a running container (``container:`` modes).
        init_path: with ``HostConfig.Init``, the host's init binary (tini) the runtime runs as
            pid 1; "" for the runtime's built-in init.
        extra_env: variables the engine adds for this start only (legacy links' ``ALIAS_…``).
        userns: config.json's "userns" (``containers.userns.runtime_spec``), None for the host's.
    Returns:
        The bundle dir.
    """
    cfg, hc = c.config, c.host_config
    bundle = makedirs(c.bundle)
    for stale in ("exit.json",):
        try:
            os.unlink(os.path.join(bundle, stale))
        except FileNotFoundError:
            pass
    argv = [c.data["Path"]] + list(c.data.get("Args") or [])
    mounts = host_devices() if hc.get("Privileged") else []
    for d in hc.get("Devices") or []:  # --device: the node itself, bound in (checked at create)
        mounts.append({"type": "bind", "source": d["PathOnHost"],
                       "destination": d.get("PathInContainer") or d["PathOnHost"], "options": ["bind", "rw"]})
    mounts += runtime_mounts(c)
    shm = hc.get("ShmSize") or 0
    if shm and shm != DEFAULT_SHM_SIZE and not (hc.get("IpcMode") or "").startswith(("host", "container:")):
        # the runtime's /dev/shm is 64 MiB: a tmpfs of the asked size goes over it
        mounts.append({"type": "tmpfs", "source": "shm", "destination": "/dev/shm",
                       "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=%d" % shm]})
    for name, key in (("hostname", "HostnamePath"), ("hosts", "HostsPath"), ("resolv.conf", "ResolvConfPath")):
        path = c.data.get(key) or ""  # --network container:X: X's files (network.joined.adopt)
        if path and os.path.exists(path):
            mounts.append({"type": "bind", "source": path, "destination": "/etc/" + name,
                           "options": ["rbind", "rw"]})
    max_size, max_file = log_limits(hc.get("LogConfig"))
    spec = {
        "id": c.id,
        "hostname": cfg.get("Hostname") or c.id[:12],
        "domainname": cfg.get("Domainname") or "",
        "rootfs": dict(rootfs, readonly=bool(hc.get("ReadonlyRootfs"))),
        "process": {
            "args": argv, "env": list(cfg.get("Env") or []) + list(extra_env), "cwd": cfg.get("WorkingDir") or "/",
            "user": cfg.get("User") or "", "group_add": list(hc.get("GroupAdd") or []),
            "tty": bool(cfg.get("Tty")),
            "open_stdin": bool(cfg.get("OpenStdin")), "stdin_once": bool(cfg.get("StdinOnce")),
            "init": bool(hc.get("Init")), "init_path": init_path if hc.get("Init") else "",
            "cap_add": list(hc.get("CapAdd") or []),
            "cap_drop": list(hc.get("CapDrop") or []), "privileged": bool(hc.get("Privileged")),
            "no_new_privileges": not {"no-new-privileges:false", "no-new-privileges=false"} & set(hc.get("SecurityOpt") or []),
            "seccomp": seccomp_spec(hc),
        },
        "namespaces": namespaces_for(hc, lookup_pid),
        "mounts": mounts,
        "cgroup": dict(cgroup_limits(hc), name=c.id),
        "sysctls": dict(hc.get("Sysctls") or {}),
        "shm_size": hc.get("ShmSize") or 67108864,
        "log_path": c.log_path if (hc.get("LogConfig") or {}).get("Type") != "none" else "",
        "log_max_size": max_size, "log_max_file": max_file,
    }
    if userns:
        spec["userns"] = userns
    write_json(os.path.join(bundle, "config.json"), spec, 0o600)
    return bundle
