"""The BuildBackend over the engine's image store (overlay driver) and the runtime's shim.

- a step's rootfs is an overlay of the parent image's layer dirs with a fresh upper dir,
  mounted at ``merged`` so that COPY/ADD/WORKDIR write into it from here;
- RUN unmounts that view and hands the same lower/upper/work to a shim (a real container:
  new namespaces and cgroup, the bundle contract in docs/internals.md) with the build's
  network, limits and /etc files (``stepenv.py``), streams its output from an attach socket,
  waits, removes what the step's network held, and mounts the view again;
- commit turns the upper dir into a layer (``images.build.layer_from_dir``, adopting the dir
  itself as the layer's diff dir: creating and deleting files is what costs on a disk) and
  registers the image config the driver made; an empty upper dir makes no layer (``empty_layer``);
- the cache is a small JSON index in the backend's state dir, checked against the store.

The vfs driver cannot give a step its own changes cheaply; like ``docker commit`` in this
engine, building then needs the overlay driver.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

from .. import userns, util
from ..errors import InvalidParameter, NotFound, RuntimeFailure, Unavailable
from ..images import build as image_build
from ..runtime.client import ShimClient
from .backend import BuildBackend, Rootfs
from .filecache import FileCache
from .runopts import RunOptions
from .stepenv import StepEnv, StepNetworks
from .steps import BuildCancelled

_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StoreRootfs(Rootfs):
    """A step rootfs: ``base`` dir holding upper/, work/, merged/ (= ``path``), bundle/."""

    def __init__(self, id, base, lower):
        super().__init__(id, os.path.join(base, "merged"), link_dir=os.path.join(base, "upper"))
        self.base, self.lower = base, lower
        self.upper, self.work = self.link_dir, os.path.join(base, "work")
        self.mounted = False


class StoreBackend(BuildBackend):
    """Args:
        store: the engine's ``images.store.ImageStore``.
        state_dir: where build rootfs dirs and the cache index live (``ROOT/builder``).
        pull: ``pull(name)`` fetching a missing or ``--pull`` image into the store, or None.
        networks: the engine's ``NetworkManager``, whose networks RUN steps join (None: RUN
            steps get no network unless ``networkmode=host``).
        run_timeout: the longest a RUN may take, in seconds (None: no limit).
    """

    def __init__(self, store, state_dir: str, pull=None, networks=None, run_timeout=None, remap=None):
        if store.driver != "overlay":
            raise Unavailable("docker build needs the overlay storage driver; this engine runs with vfs")
        self.store, self.pull, self.run_timeout = store, pull, run_timeout
        self.remap = remap  # userns.Remap: RUN steps run remapped, as the engine's containers
        self.networks = StepNetworks(networks)
        self.dir = util.makedirs(state_dir)
        self.rootfs_dir = util.makedirs(os.path.join(state_dir, "rootfs"))
        self.cache_path = os.path.join(state_dir, "cache.json")
        self.file_cache = FileCache(os.path.join(state_dir, "files"))
        self.lock = threading.Lock()
        self.started = time.time()

    def context_file_cache(self):
        return self.file_cache

    def check_run_options(self, options):
        self.networks.check(options)

    def clean_stale(self) -> None:
        """Remove what builds of a previous engine run left (call once, at engine start, before
        any build): kill a RUN container still running under its shim, unmount, delete."""
        for rid in os.listdir(self.rootfs_dir):
            base = os.path.join(self.rootfs_dir, rid)
            shim = ShimClient(os.path.join(base, "bundle"))
            if os.path.exists(shim.sock_path):
                _kill_and_wait(shim)
            self.networks.release(rid)
            subprocess.run(["umount", os.path.join(base, "merged")], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
        for name in os.listdir(self.dir):  # build contexts (request.handle_build unpacks them here)
            path = os.path.join(self.dir, name)
            # older than this backend: a build that starts meanwhile keeps its context
            if name.startswith("build-") and os.lstat(path).st_mtime < self.started:
                shutil.rmtree(path, ignore_errors=True)

    def resolve_image(self, name, pull=False):
        if pull and self.pull is not None:
            self.pull(name)
        try:
            image_id = self.store.resolve(name)
        except NotFound:
            if self.pull is None or pull:
                raise
            self.pull(name)
            image_id = self.store.resolve(name)
        return image_id, self.store.config(image_id)

    def create_rootfs(self, image_id):
        rid = util.new_id()
        base = os.path.join(self.rootfs_dir, rid)
        for d in ("upper", "work", "merged", "bundle", "empty"):
            os.makedirs(os.path.join(base, d))
        # scratch, or an image with no layers yet (FROM scratch + MAINTAINER): an empty lower dir
        lower = (self.store.lower_dirs(image_id) if image_id else []) or [os.path.join(base, "empty")]
        rootfs = StoreRootfs(rid, base, lower)
        try:
            self._mount(rootfs)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return rootfs

    def _mount(self, rootfs) -> None:
        # lower dirs relative to the layers dir keep many layers under the one-page option limit
        layers = os.path.dirname(os.path.dirname(rootfs.lower[0]))
        lower = ":".join(os.path.relpath(d, layers) for d in rootfs.lower)
        opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, rootfs.upper, rootfs.work)
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, rootfs.path],
                           cwd=layers, capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable("cannot mount the build step's filesystem: %s" % r.stderr.strip())
        rootfs.mounted = True

    def _umount(self, rootfs) -> None:
        if rootfs.mounted:
            subprocess.run(["umount", rootfs.path], capture_output=True)
            rootfs.mounted = False

    def run(self, rootfs, config, argv, output, cancelled=None, options=None):
        env = StepEnv(self.networks, options or RunOptions(), rootfs.id, rootfs.base)
        try:
            env.prepare(rootfs.path)
            self._umount(rootfs)  # one overlay per upper dir: the container mounts its own
            try:
                return self._run_container(rootfs, env, config, argv, output, cancelled)
            finally:
                self._mount(rootfs)
        finally:
            env.release()

    def _run_container(self, rootfs, env, config, argv, output, cancelled):
        if self.remap is None:
            return self._run_step(rootfs, env, config, argv, output, cancelled, rootfs.lower, None)
        # the step's own files (its upper dir, init layer and /etc files) hold the image's ids
        # between steps, which COPY writes and commit adopts: the remapped root's only while it runs
        owned = [rootfs.upper, env.init] + [os.path.join(rootfs.base, n) for n in ("hostname", "hosts", "resolv.conf")]
        lower = [self.store.layers.remapped_diff("sha256:" + os.path.basename(os.path.dirname(d)), self.remap)
                 if d.startswith(self.store.layers.root + os.sep) else d for d in rootfs.lower]
        for p in owned:
            userns.shift_tree(p, self.remap)
        try:
            return self._run_step(rootfs, env, config, argv, output, cancelled, lower, self.remap.runtime_spec())
        finally:
            for p in owned:
                userns.shift_tree(p, self.remap, back=True)

    def _run_step(self, rootfs, env, config, argv, output, cancelled, lower, userns_spec):
        bundle = os.path.join(rootfs.base, "bundle")
        for stale in ("exit.json", "config.json"):
            if os.path.exists(os.path.join(bundle, stale)):
                os.unlink(os.path.join(bundle, stale))
        spec = {
            "id": rootfs.id, "hostname": env.hostname, "domainname": "",
            "rootfs": {"driver": "overlay", "lower": [env.init] + lower, "upper": rootfs.upper,
                       "work": rootfs.work, "merged": rootfs.path, "readonly": False},
            "process": {"args": list(argv), "env": list(config.get("Env") or [_PATH_ENV]),
                        "cwd": config.get("WorkingDir") or "/", "user": config.get("User") or "",
                        "tty": False, "open_stdin": False, "stdin_once": False, "init": False,
                        "cap_add": [], "cap_drop": [], "privileged": False, "no_new_privileges": True},
            "namespaces": {"net": env.namespace(), "pid": "new", "ipc": "new", "uts": "new"},
            "mounts": env.mounts(), "cgroup": env.cgroup(), "sysctls": {},
            "log_path": "", "log_max_size": 0,
        }
        if userns_spec:
            spec["userns"] = userns_spec
        util.write_json(os.path.join(bundle, "config.json"), spec, 0o600)
        shim = ShimClient(bundle)
        pid = shim.spawn()
        finished = False
        try:
            env.created(pid)
            stream = shim.attach(stdin=False, stdout=True, stderr=True)
            try:
                try:
                    shim.start()
                except RuntimeFailure as e:
                    output(("%s\n" % e).encode(), 2)
                    finished = True
                    return getattr(e, "exit_code", 127)
                _pump_frames(stream, output, cancelled)
            finally:
                stream.close()
            code = shim.wait(timeout=self.run_timeout).get("exit_code", 1)
            finished = True
            return code
        finally:
            if not finished:
                _kill_and_wait(shim)

    def commit(self, parent_id, rootfs, image):
        image = dict(image)
        parent = self.store.config(parent_id) if parent_id else {}
        diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
        if rootfs is not None and os.listdir(rootfs.upper):
            self._umount(rootfs)  # the upper dir becomes the layer: nothing may write to it now
            if os.path.ismount(rootfs.path):
                raise Unavailable("cannot commit the build step: its filesystem is still mounted at %s "
                                  "(busy?); retry the build" % rootfs.path)
            meta = image_build.layer_from_dir(self.store, rootfs.upper, parent_id, adopt=True)
            diff_ids.append(meta["diff_id"])
        elif rootfs is not None:
            image["history"] = image["history"][:-1] + [dict(image["history"][-1], empty_layer=True)]
        image["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        with self.store.lock:
            return self.store.add_config(image_build.config_bytes(image), parent_id or "")

    def release(self, rootfs):
        self._umount(rootfs)
        shutil.rmtree(rootfs.base, ignore_errors=True)

    def tag(self, image_id, ref):
        self.store.tag(image_id, ref)

    def find_image(self, ref):
        try:
            image_id = self.store.resolve(ref)
        except (NotFound, InvalidParameter):
            return None
        return image_id, self.store.config(image_id)

    def restore(self, parent_id, image):
        with self.store.lock:
            return self.store.add_config(image_build.config_bytes(image), parent_id or "")

    def find_cache(self, parent_id, key):
        with self.lock:
            found = util.read_json(self.cache_path, {}).get("%s %s" % (parent_id or "", key))
        if not found:
            return None
        try:
            self.store.get(found)
        except NotFound:
            return None
        return found

    def store_cache(self, parent_id, key, image_id):
        with self.lock:
            cache = util.read_json(self.cache_path, {})
            cache["%s %s" % (parent_id or "", key)] = image_id
            util.write_json(self.cache_path, cache)


def _pump_frames(sock: socket.socket, output, cancelled=None) -> None:
    """Read docker's multiplexed frames until the container's output ends.

    Raises:
        BuildCancelled: ``cancelled()`` said True (checked every half second).
    """
    buf = b""
    poller = select.poll()  # not select.select: a busy engine has descriptors past 1024
    poller.register(sock, select.POLLIN)
    while True:
        if cancelled is not None:
            ready = poller.poll(500)
            if cancelled():
                raise BuildCancelled()
            if not ready:
                continue
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        while len(buf) >= 8:
            kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            payload, buf = buf[8:8 + size], buf[8 + size:]
            output(payload, 2 if kind == 2 else 1)


def _kill_and_wait(shim: ShimClient) -> None:
    """Stop a RUN whose build was interrupted; never leave it running."""
    try:
        shim.kill(signal.SIGKILL)
    except RuntimeFailure:
        pass
    try:
        shim.wait(timeout=30)
    except RuntimeFailure:
        pass
