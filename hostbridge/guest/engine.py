"""The backend the API routes call: containers, images, events, and the system views."""

from __future__ import annotations

import os
import socket
import threading
import time

from . import ENGINE_VERSION
from . import filters as _filters
from . import versioninfo
from .backends import ContainerBackend, ImageBackend, NetworkBackend, VolumeBackend
from .containers import logs as logs_mod
from .containers import resources
from .containers import views
from .containers.execs import ExecManager
from .containers.health import HealthChecks
from .containers.manager import ContainerManager
from .errors import Conflict, GuestError, InvalidParameter, NotFound, NotImplementedHere
from .events import Events
from .images import reference
from .images.store import ImageStore
from .network.manager import NetworkManager
from .registry.auth import AuthConfig, decode_registry_auth
from .registry.config import registry_domain
from .transfers import Transfers, pull_reference
from .util import now_rfc3339, parse_time
from .volumes.mounts import VolumeManager


_build_auth = threading.local()  # a build runs in its request's thread: its credentials stay there


class Engine:
    """Everything the routers need, behind one narrow object."""

    def __init__(self, root, bip=None, bridge=None, registry_config=None, init_path="", remap=None):
        self.root = root
        self.started = time.time()
        self._build_backend = None
        self.events = Events()
        self.images = ImageStore(root)
        self.transfers = Transfers(self.images, root, registry_config)
        self.remap = remap  # userns.Remap (--userns-remap) or None
        self.containers = ContainerManager(root, self.images, self.events, init_path=init_path, remap=remap)
        self.volumes = VolumeManager(root, self.containers)
        self.network = NetworkManager(root, self.containers, bip=bip, bridge=bridge)
        self.containers.hooks += [self.volumes, self.network]
        self.execs = ExecManager(self.containers, self.events)
        self.containers.health = HealthChecks(self.containers, self.execs)
        self.volumes.restore()
        self.containers.restore()
        self.network.restore()
        self._backends = {"networks": NetworkBackend(self.network, self.events),
                          "volumes": VolumeBackend(self.volumes, self.events),
                          "images": ImageBackend(self), "containers": ContainerBackend(self),
                          "execs": self.execs}  # the exec manager is narrow already, and emits its own events

    def backend(self, name):
        """The narrow backend the router ``name`` calls (networks, volumes, images, containers, execs)."""
        return self._backends[name]

    def build_backend(self):
        """The builder's backend over the image store (made on first use: overlay only)."""
        if self._build_backend is None:
            from .builder.storebackend import StoreBackend
            b = StoreBackend(self.images, os.path.join(self.root, "builder"), pull=self._pull_for_build,
                             networks=self.network, remap=self.remap)
            b.clean_stale()
            self._build_backend = b
        return self._build_backend

    def _pull_for_build(self, name):
        """A build's FROM image that is missing (or ``--pull``): pulled quietly, with the
        credentials the build request carried for that registry (``X-Registry-Config``)."""
        ref = reference.parse_normalized(name)
        auths = getattr(_build_auth, "configs", None) or {}
        auth = None
        for key, cfg in auths.items():
            try:
                if registry_domain(key) == ref.domain:
                    auth = cfg
                    break
            except GuestError:
                continue
        res = self.transfers.pull(ref.familiar(), auth=auth)
        self.events.emit("image", "pull", res.ref.familiar(), {"name": res.ref.familiar()})

    def build_with_auth(self, configs, fn):
        """Run ``fn()`` (a build, in this request's thread) with ``configs`` as pull credentials."""
        _build_auth.configs = configs
        try:
            return fn()
        finally:
            _build_auth.configs = None

    def shutdown(self):
        self.containers.shutdown()
        self.network.shutdown()
        self.volumes.shutdown()

    # ---- system ---------------------------------------------------------------------------
    def version(self):
        return versioninfo.version()

    def info(self):
        cs = self.containers.store.all()
        running = sum(1 for c in cs if c.running and not c.state.get("Paused"))
        paused = sum(1 for c in cs if c.state.get("Paused"))
        from .runtime import cgroups
        lay = cgroups.layout()
        feats = cgroups.features(lay)
        init = self._init_info()
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return {
            "ID": self._engine_id(), "Containers": len(cs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
            "Images": len(self.images.list(all=True)),  # dockerd counts every image, intermediates too
            "Driver": "overlay2" if self.images.driver == "overlay" else "vfs",
            "DriverStatus": [["Backing Filesystem", "extfs"]], "Plugins": {"Volume": ["local"],
            "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
            **feats, "IPv4Forwarding": True, "BridgeNfIptables": _bridge_nf("iptables"),
            "BridgeNfIp6tables": _bridge_nf("ip6tables"), "GenericResources": None,
            "KernelMemory": False, "KernelMemoryTCP": False,  # --kernel-memory is refused: no such limit here
            "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
            "NGoroutines": 0, "SystemTime": now_rfc3339(), "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": cgroups.version(lay),
            "NEventsListener": 0, "KernelVersion": os.uname().release, "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": os.uname().machine,
            "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": self.transfers.info(),
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": self.root,
            **self.transfers.config.proxies.info(), "Name": socket.gethostname(),
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": ENGINE_VERSION,
            "Runtimes": {"hostbridge": {"path": "hostbridge-shim"}}, "DefaultRuntime": "hostbridge",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "SecurityOptions": [
                "name=seccomp,profile=builtin"] + (["name=userns"] if self.remap else []),
            "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
            **init,
            "Warnings": cgroups.feature_warnings(feats) + init.get("Warnings", []) + self.network.notes,
        }

    def _init_info(self):
        """/info's InitBinary and InitCommit, as dockerd reports its docker-init; with no static
        init binary, the built-in init and a warning saying so."""
        from .runtime import initbin
        binary = self.containers.init.binary()
        if binary is None:
            return {"InitBinary": initbin.BUILTIN, "InitCommit": {"ID": "N/A", "Expected": ""},
                    "Warnings": ["WARNING: --init uses hostbridge's built-in python init: %s (install tini, "
                                 "or start the engine with --init-path)" % self.containers.init.reason]}
        # no commit is expected of a binary we did not ship: say the one found is the one expected
        return {"InitBinary": binary.path, "InitCommit": {"ID": binary.commit, "Expected": binary.commit}}

    def _engine_id(self):
        p = os.path.join(self.root, "engine-id")
        try:
            with open(p) as f:
                return f.read().strip()
        except FileNotFoundError:
            # a random (version 4) UUID, as uuid.uuid4() makes it; uuid's import would cost the
            # first /info of a new machine a fair part of a start in an emulated guest
            b = bytearray(os.urandom(16))
            b[6], b[8] = b[6] & 0x0F | 0x40, b[8] & 0x3F | 0x80
            h = b.hex()
            eid = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
            with open(p, "w") as f:
                f.write(eid)
            return eid

    # ---- registries -----------------------------------------------------------------------
    def auth(self, body):
        """``POST /auth``: check a login with the registry (nothing is stored)."""
        return self.transfers.login(AuthConfig.from_dict(body if isinstance(body, dict) else {}))

    def pull(self, from_image, tag, platform_, auth_header, send):
        """``POST /images/create?fromImage=&tag=&platform=``: pull, one progress message at a time.

        Args:
            send: ``send(message: dict)`` writes one progress line to the client.
        Raises:
            GuestError: before the first ``send`` (the API answers with its status: 404 for a
                missing repository); after it, the API writes it as an ``errorDetail`` line.
            ProgressAborted: ``send`` failed (the client has gone).
        """
        name = pull_reference(from_image, tag)
        auth = decode_registry_auth(auth_header)
        ref = reference.parse(name)
        if ref.tag is None and ref.digest is None:
            results = self.transfers.pull_all_tags(name, auth, platform_, send)
        else:
            results = [self.transfers.pull(name, auth, platform_, send)]
        for res in results:
            self.events.emit("image", "pull", res.ref.familiar(), {"name": res.ref.familiar()})

    def push(self, name, tag, auth_header, send):
        """``POST /images/{name}/push?tag=``: push, one progress message at a time (as ``pull``)."""
        results = self.transfers.push(name, tag, auth=decode_registry_auth(auth_header), progress=send)
        for ref in results:
            self.events.emit("image", "push", ref, {"name": ref})

    def distribution(self, name, auth_header=""):
        """``GET /distribution/{name}/json``: docker's DistributionInspect, read from the registry."""
        return self.transfers.distribution(name, auth=decode_registry_auth(auth_header or ""))

    def search(self, term, limit=None, filters=None, auth_header="", with_tags=False):
        """``GET /images/search``: docker's SearchResult list (``tags=1``, a hostbridge extension:
        one entry per tag of each matching repository of a private registry)."""
        return self.transfers.search(term, limit=limit, filters=filters,
                                     auth=decode_registry_auth(auth_header or ""), with_tags=with_tags)

    def commit(self, ref, repo_tag, config, comment, author, changes, pause=True):
        """docker commit: the container's upper dir becomes a layer over its image."""
        c = self.containers.get(ref)
        if self.images.driver == "vfs":
            raise InvalidParameter("docker commit is not available with the vfs storage driver")
        cfg = dict(c.config)
        if config:
            cfg.update({k: v for k, v in config.items() if v not in (None, "")})
        with resources.frozen(self.containers, c, pause):  # docker's default: the diff taken paused
            image_id = self.images.commit(c.data["Image"], self.containers.upper_dir(c), config=cfg,
                                          author=author, comment=comment, changes=changes, ref=repo_tag,
                                          container_id=c.id, container_config=c.config,
                                          created_by=views.command_text(c.data),
                                          remap=self.containers.remap_of(c))
        self.containers.emit(c, "commit")
        return image_id

    # ---- containers -----------------------------------------------------------------------
    def _dir_size(self, c):
        """(SizeRw, SizeRootFs): the container's own layer, and that plus its image's."""
        rw = views.dir_size_of(self.containers.upper_dir(c))
        try:
            image = self.images.size(c.data["Image"])
        except GuestError:
            image = 0
        return rw, rw + image

    def _image_name(self, image_id):
        return None

    def list_containers(self, all=False, limit=-1, size=False, filters=None):
        f = _filters.normalize(filters)
        views.check_filters(f)
        cs = sorted(self.containers.store.all(), key=lambda c: c.data["Created"], reverse=True)
        out = []
        for c in cs:
            if not all and not c.running and "status" not in f and "exited" not in f and limit in (None, -1, 0):
                continue
            if not views.matches(c, f, self.images.resolve, self.containers.get):
                continue
            out.append(views.summary(c, size, self._dir_size))
            if limit and limit > 0 and len(out) >= limit:
                break
        return out

    def inspect_container(self, ref, size=False):
        return views.inspect(self.containers.get(ref), size, self._dir_size)

    def logs(self, ref, stdout=True, stderr=True, tail=None, since=0.0, until=0.0, follow=False,
             stop=lambda: False):
        c = self.containers.get(ref)
        if (c.host_config.get("LogConfig") or {}).get("Type") == "none":
            raise NotImplementedHere("configured logging driver does not support reading")

        def wait_exit(timeout):
            # the shim closed the log: its exit is recorded (and c.changed notified) right after
            with c.lock:
                c.changed.wait_for(lambda: not c.running, timeout)

        return logs_mod.read_batches(c.log_path, stdout, stderr, tail, since, until, follow,
                                     is_running=lambda: c.running or bool(c.state.get("Restarting")), stop=stop,
                                     wait_exit=wait_exit)

    def prune_containers(self, filters=None):
        f = _filters.normalize(filters, ("until", "label", "label!"))
        limit = _filters.until(f)  # a bad value is refused before anything goes
        deleted, reclaimed = [], 0
        for c in self.containers.store.all():
            if c.running or c.state.get("Restarting"):
                continue
            if not _filters.labels_match(c.config.get("Labels"), f):
                continue
            if limit is not None and parse_time(c.data["Created"]).timestamp() >= limit:
                continue
            reclaimed += self._dir_size(c)[0]
            try:
                self.containers.remove(c.id)
                deleted.append(c.id)
            except (Conflict, NotFound):
                pass
        self.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def disk_usage(self):
        """GET /system/df: images (with how many containers use each and the size they share
        with other images), containers, volumes."""
        used = self._images_in_use()
        images = self.images.list(all=True)
        chains = {im["Id"]: self.images.chains(im["Id"]) for im in images}
        users = {}
        for cs in chains.values():
            for ch in set(cs):
                users[ch] = users.get(ch, 0) + 1
        size_of = lambda ch: self.images.layers.meta(ch)["size"]  # noqa: E731
        for im in images:
            im["Containers"] = len(used.get(im["Id"], []))
            im["SharedSize"] = sum(size_of(ch) for ch in set(chains[im["Id"]]) if users[ch] > 1)
        containers = self.list_containers(all=True, size=True)
        volumes = self.volumes.disk_usage() if getattr(self, "volumes", None) else []
        return {"LayersSize": sum(size_of(ch) for ch in users), "Images": images, "Containers": containers,
                "Volumes": volumes, "BuildCache": None, "BuilderSize": 0}  # as dockerd: no BuildKit cache

    # ---- images ---------------------------------------------------------------------------
    def _images_in_use(self):
        """{image_id: [(container_id, running)]}, as the image store's delete rules need."""
        used = {}
        for c in self.containers.store.all():
            used.setdefault(c.data["Image"], []).append((c.id, c.running))
        return used

    def delete_image(self, name, force=False, prune=True):
        res = self.images.delete(name, force=force, prune=prune, in_use=self._images_in_use())
        for item in res:
            for k, v in item.items():
                self.events.emit("image", "untag" if k == "Untagged" else "delete", v, {"name": v})
        return res

    def prune_images(self, filters=None):
        f = _filters.normalize(filters)
        dangling_only = [x.lower() for x in f.pop("dangling", ["true"])] != ["false"]
        res = self.images.prune(dangling_only=dangling_only, in_use=self._images_in_use(), filters=f)
        if not res.get("ImagesDeleted"):
            res["ImagesDeleted"] = None
        return res


def _bridge_nf(tool):
    """dockerd's BridgeNfIptables/BridgeNfIp6tables: bridged traffic passes through ``tool``."""
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-" + tool) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
