"""What a RUN container gets besides its rootfs: network, /etc files, limits, as dockerd gives.

dockerd runs each RUN step in a container with the build's ``networkmode`` (the default bridge
by default, so that ``RUN apt-get …`` reaches out through its NAT), its own hostname, the
/etc/hosts and /etc/resolv.conf a container on that network gets, and the build's resource
options. ``StepNetworks`` (one per engine) knows the engine's networks; ``StepEnv`` (one per RUN)
prepares one step and removes everything it made afterwards: the veth and address (also by
``release(step_id)`` alone, after an engine crash), the files in the step's dir.

The /etc files are bind-mounted over files of an *init layer* (docker's ``-init`` layer): a
lower layer of the RUN container only, holding the mount points (etc/hosts, /proc, /sys, /dev…)
so that they never show up as changes of the step's layer.
"""

from __future__ import annotations

import os
import resource
import socket

from ..errors import InvalidParameter, NotFound
from ..network import sandbox
from .runopts import RunOptions

_LOCALHOST = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
              "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
_MOUNT_POINT_DIRS = ("etc", "dev", "proc", "sys")
_ETC_FILES = ("hostname", "hosts", "resolv.conf")


class StepNetworks:
    """RUN steps' networking over the engine's ``NetworkManager`` (None: none at all, so the
    default mode then gives RUN steps no network, as a backend without an engine must)."""

    def __init__(self, manager=None):
        self.manager = manager

    def check(self, options: RunOptions) -> None:
        """Raise InvalidParameter when ``options.network`` names no network of this engine."""
        if options.network in ("none", "host") or (options.network == "bridge" and self.manager is None):
            return
        if self.manager is None:
            raise InvalidParameter("invalid networkmode %s: this builder has no networks" % options.network)
        try:
            sandbox.bridge_network(self.manager, options.network)
        except NotFound:
            raise InvalidParameter("invalid networkmode %s: no such network; use default, none, host or the "
                                   "name of a network (docker network ls)" % options.network) from None

    def bridged(self, options: RunOptions) -> bool:
        return self.manager is not None and options.network not in ("none", "host")

    def release(self, step_id: str) -> None:
        """Free what a step of ``step_id`` holds (its veth, its addresses); no error if nothing."""
        if self.manager is not None:
            sandbox.release(self.manager, step_id)

    def host_gateway(self) -> str:
        """The address ``host-gateway`` stands for in extra hosts: the default bridge's gateway."""
        if self.manager is None:
            raise InvalidParameter("extrahosts host-gateway needs the engine's default bridge")
        return sandbox.bridge_network(self.manager, "bridge")["IPAM"]["Config"][0]["Gateway"]


class StepEnv:
    """One RUN step's environment.

    Args:
        networks: the engine's StepNetworks.
        options: the build's RunOptions.
        step_id: the step's id (its rootfs id; also the IPAM owner).
        base: the step's private dir (the init layer and /etc files go there).
    """

    def __init__(self, networks: StepNetworks, options: RunOptions, step_id: str, base: str):
        self.networks, self.options, self.id, self.base = networks, options, step_id, base
        self.init = os.path.join(base, "init")
        self.attachment = None
        self.hostname = step_id[:12]

    def prepare(self, merged: str) -> None:
        """Reserve the address and write the init layer and /etc files. ``merged`` is the
        step's filesystem as mounted now (the init layer copies its dirs' owner and mode)."""
        if self.networks.bridged(self.options):
            self.attachment = sandbox.reserve(self.networks.manager, self.id, self.options.network)
        _init_layer(self.init, merged)
        extra = [(ip if ip != "host-gateway" else self.networks.host_gateway(), name)
                 for name, ip in self.options.extra_hosts]
        if self.options.network == "host":
            self.hostname = socket.gethostname()
            hosts = _read("/etc/hosts").rstrip("\n").splitlines() + ["%s\t%s" % e for e in extra]
            resolv = _read("/etc/resolv.conf")
        else:
            from ..containers.manager import container_resolv_conf  # a container's, exactly
            hosts = _LOCALHOST + ["%s\t%s" % e for e in extra]
            if self.attachment is not None:
                hosts.append("%s\t%s" % (self.attachment.ip, self.hostname))
                hosts += ["%s\t%s" % (ip, " ".join(names))
                          for ip, names in sandbox.peers(self.networks.manager, self.attachment)]
            resolv = container_resolv_conf(None, None, None)
        for name, text in (("hostname", self.hostname + "\n"), ("hosts", "\n".join(hosts) + "\n"),
                           ("resolv.conf", resolv)):
            with open(os.path.join(self.base, name), "w") as f:
                f.write(text)

    def namespace(self) -> str:
        """config.json's ``namespaces.net``."""
        return "host" if self.options.network == "host" else ("new" if self.attachment else "none")

    def mounts(self) -> list:
        """config.json's mounts: the /etc files, and /dev/shm when ``shmsize`` was given."""
        out = [{"type": "bind", "source": os.path.join(self.base, n), "destination": "/etc/" + n,
                "options": ["rbind", "rw"]} for n in _ETC_FILES]
        if self.options.shm_size:
            out.append({"type": "tmpfs", "source": "shm", "destination": "/dev/shm",
                        "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=%d" % self.options.shm_size]})
        return out

    def cgroup(self) -> dict:
        """config.json's "cgroup": the build's limits."""
        return dict(self.options.cgroup, name="build-" + self.id[:12])

    def created(self, pid: int) -> None:
        """The step's container exists (``pid`` waits to run): plumb its network, set rlimits."""
        if self.attachment is not None:
            sandbox.plumb(self.networks.manager, self.attachment, pid)
        for name, soft, hard in self.options.ulimits:
            inf = resource.RLIM_INFINITY
            resource.prlimit(pid, getattr(resource, name), (inf if soft < 0 else soft, inf if hard < 0 else hard))

    def release(self) -> None:
        """Remove the veth and the address (the namespace went with the process)."""
        if self.attachment is not None:
            self.networks.release(self.id)
            self.attachment = None


def _init_layer(init: str, merged: str) -> None:
    for d in _MOUNT_POINT_DIRS:
        src, dst = os.path.join(merged, d), os.path.join(init, d)
        if os.path.islink(src) or os.path.lexists(dst):
            continue  # a symlinked /etc is the image's business
        os.makedirs(dst, 0o755)
        if d == "etc":
            for name in _ETC_FILES:
                open(os.path.join(dst, name), "a").close()
        try:
            st = os.stat(src)
        except FileNotFoundError:
            continue
        # a RUN that writes in /etc copies the dir up from here: it must look like the image's
        os.chown(dst, st.st_uid, st.st_gid)
        os.chmod(dst, st.st_mode & 0o7777)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
