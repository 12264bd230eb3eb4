"""Container lifecycle: create, start, stop, kill, restart, wait, remove, attach, restore.

Each container has at most one shim (its supervisor process) while it runs; a monitor thread
per running container blocks on the shim's ``wait`` and records the exit.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time

from ..errors import Conflict, GuestError, InvalidParameter, NotFound, NotModified, RuntimeFailure
from ..runtime import oom
from ..runtime.client import ShimClient
from ..network import joined, links
from ..runtime import cgroups, initbin, zygote
from ..util import ZERO_TIME, makedirs, new_id, now_rfc3339
from . import bundle as bundle_mod
from . import userns
from .config import discard_unsupported, new_record, parse_signal
from .names import random_name
from .store import ContainerStore

log = logging.getLogger("hostbridge.containers")

_NAME_OK = __import__("re").compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class PendingAttach:
    """An attach that arrived before start: start() connects it before the process runs."""

    def __init__(self, stdin, stdout, stderr):
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.sock = None
        self.ready = threading.Event()
        self.cancelled = False


class PendingWait:
    """A wait registered at ``generation`` (the container's exit count then): see wait_begin."""

    def __init__(self, container, condition, generation):
        self.container, self.condition, self.generation = container, condition, generation


class ContainerManager:
    def __init__(self, root, images, events, init_path="", remap=None):
        self.root = root
        self.remap = remap  # userns.Remap of an engine started with --userns-remap, else None
        self.init = initbin.Selector(init_path)  # --init's binary (--init-path, else a static tini)
        self._builtin_init_logged = False
        self.images = images
        self.events = events
        self.store = ContainerStore(root)
        self.rootfs_root = makedirs(os.path.join(root, "rootfs"))
        self.hooks = []  # objects with on_create(c, body) / on_start(c, pid) / on_stop(c) / on_remove(c, volumes)
        self.health = None  # health.HealthChecks, set by the engine: told of starts, stops, pauses
        self.stopping = False
        self._swappiness_ok = None  # cgroups.swappiness(), read at the first create

    # ---- lookup -------------------------------------------------------------------------
    def get(self, ref):
        return self.store.get(ref)

    def _attrs(self, c, **extra):
        a = {"image": c.config.get("Image", ""), "name": c.name}
        a.update({k: v for k, v in (c.config.get("Labels") or {}).items()})
        a.update(extra)
        return a

    def emit(self, c, action, **extra):
        """Emit container event ``action`` for ``c`` with dockerd's attributes (image, name, labels)."""
        self.events.emit("container", action, c.id, self._attrs(c, **extra))

    _emit = emit

    # ---- create -------------------------------------------------------------------------
    def create(self, body, name=None, platform=None):
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON body: an object is required")
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidParameter("Config.Image is required")
        if name:
            if not _NAME_OK.match(name):
                raise InvalidParameter("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" % name)
            name = name.lstrip("/")
        image_id = self.images.resolve(image_ref)
        userns.check_create(self.remap, body.get("HostConfig") or {})
        warnings = discard_unsupported(body.get("HostConfig"), self._swappiness())
        zygote.warm()
        image_cfg = (self.images.config(image_id) or {}).get("config") or {}
        cid = new_id()
        if not name:
            name = random_name(self.store.names())
        data = new_record(cid, name, body, image_id, image_cfg, "vfs" if self.images.driver == "vfs" else "overlay2")
        c = self.store.reserve(cid, name, data)
        try:
            self._prepare_rootfs(c)
            c.data["LogPath"] = c.log_path
            self._write_etc_files(c)
            for hook in self.hooks:  # volumes (Mounts), networks (Networks, --ip)
                hook.on_create(c, body)
            self.store.save(c)
        except BaseException:
            self._run_remove_hooks(c, True)
            self.store.remove(c)
            shutil.rmtree(os.path.join(self.rootfs_root, cid), ignore_errors=True)
            raise
        self._emit(c, "create")
        return {"Id": cid, "Warnings": warnings}

    def _swappiness(self):
        if self._swappiness_ok is None:
            self._swappiness_ok = cgroups.swappiness()
        return self._swappiness_ok

    def _prepare_rootfs(self, c):
        d = makedirs(os.path.join(self.rootfs_root, c.id))
        if self.images.driver == "vfs":
            path = makedirs(os.path.join(d, "rootfs"), 0o755)
            self.images.materialize(c.data["Image"], path)
            c.data["GraphDriver"]["Data"] = {"Dir": path}
        else:
            for sub in ("upper", "work", "merged"):
                makedirs(os.path.join(d, sub), 0o755)
            self._make_init_layer(os.path.join(d, "init"))
            lower = self.lower_dirs(c)
            c.data["GraphDriver"]["Data"] = {
                "LowerDir": ":".join(lower), "UpperDir": os.path.join(d, "upper"),
                "WorkDir": os.path.join(d, "work"), "MergedDir": os.path.join(d, "merged")}
        remap = self.remap_of(c)
        if remap is not None:
            userns.own_rootfs(remap, d, self.images.driver)
        userns.mark(remap, d)

    def _make_init_layer(self, init):
        """Docker's "-init" layer: the mount points the runtime binds over (/etc/hosts, /dev,
        /proc…), so that they are not recorded as changes of the container (diff, commit)."""
        for sub in ("dev", "proc", "sys", "etc", "dev/pts", "dev/shm"):
            makedirs(os.path.join(init, sub), 0o755)
        for f in ("etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console"):
            open(os.path.join(init, f), "a").close()

    def remap_of(self, c):
        """The userns.Remap ``c`` runs under (None: the host's ids)."""
        return userns.remap_for(self.remap, c.host_config)

    def lower_dirs(self, c):
        """The overlay lower dirs of ``c``, top first: its init layer, then the image's layers."""
        init = os.path.join(self.rootfs_root, c.id, "init")
        image = self.images.lower_dirs(c.data["Image"], self.remap_of(c))
        return [init] + image if os.path.isdir(init) else image

    def rootfs_spec(self, c):
        d = os.path.join(self.rootfs_root, c.id)
        if self.images.driver == "vfs":
            return {"driver": "vfs", "path": os.path.join(d, "rootfs")}
        return {"driver": "overlay", "lower": self.lower_dirs(c),
                "upper": os.path.join(d, "upper"), "work": os.path.join(d, "work"),
                "merged": os.path.join(d, "merged")}

    def upper_dir(self, c):
        d = os.path.join(self.rootfs_root, c.id)
        return os.path.join(d, "rootfs" if self.images.driver == "vfs" else "upper")

    def _write_etc_files(self, c):
        cfg, hc = c.config, c.host_config
        hostname = cfg.get("Hostname") or c.id[:12]
        with open(os.path.join(c.dir, "hostname"), "w") as f:
            f.write(hostname + "\n")
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
                 "ff02::2\tip6-allrouters"]
        for entry in hc.get("ExtraHosts") or []:
            host, _, ip = entry.partition(":")
            if not ip:
                raise InvalidParameter("invalid extra host: %s (expected HOST:IP)" % entry)
            hosts.append("%s\t%s" % (ip, host))
        with open(os.path.join(c.dir, "hosts"), "w") as f:
            f.write("\n".join(hosts) + "\n")
        c.data["HostnamePath"] = os.path.join(c.dir, "hostname")
        c.data["HostsPath"] = os.path.join(c.dir, "hosts")
        if (hc.get("NetworkMode") or "") != "host":
            resolv = container_resolv_conf(hc.get("Dns"), hc.get("DnsSearch"), hc.get("DnsOptions"))
            with open(os.path.join(c.dir, "resolv.conf"), "w") as f:
                f.write(resolv)
            c.data["ResolvConfPath"] = os.path.join(c.dir, "resolv.conf")
        remap = self.remap_of(c)
        if remap is not None:
            userns.own_files(remap, [c.data.get(k) for k in ("HostnamePath", "HostsPath", "ResolvConfPath")])

    # ---- start ----------------------------------------------------------------------------
    def _check_ipc_donor(self, c):
        """``--ipc container:X`` joins X's IPC namespace only when X shares it, as dockerd.

        Raises:
            Conflict: X's IpcMode is not ``shareable`` (dockerd's message).
        """
        mode = c.host_config.get("IpcMode") or ""
        if mode.startswith("container:"):
            donor = self.get(mode.split(":", 1)[1])
            if (donor.host_config.get("IpcMode") or "private") != "shareable":
                raise Conflict("can't join IPC of container %s: non-shareable IPC (hint: use "
                               "IpcMode:shareable for the donor container)" % donor.id)

    def _running_pid(self, ref):
        other = self.get(ref)
        if not other.running:
            raise Conflict("cannot join namespaces of container %s: it is not running" % other.name)
        return other.state["Pid"]

    def _init_path(self, c):
        """The host's init binary for ``c`` ("" without --init, or for the built-in init)."""
        if not c.host_config.get("Init"):
            return ""
        binary = self.init.binary()
        if binary is None and not self._builtin_init_logged:
            self._builtin_init_logged = True
            log.warning("--init uses the built-in python init: %s (install tini, or start the engine "
                        "with --init-path)", self.init.reason)
        return binary.path if binary else ""

    def start(self, ref):
        c = self.get(ref)
        with c.lock:
            if c.running:
                raise NotModified("container already started")
            if c.removing:
                raise Conflict("container is marked for removal and cannot be started")
            c.stop_requested = False
            self._start_locked(c)

    def _start_locked(self, c):
        shim = None
        try:
            self._check_ipc_donor(c)
            userns.check_mark(self.remap_of(c), os.path.join(self.rootfs_root, c.id), c.name)
            joined.adopt(c, self.get)  # --network container:X: X's etc files and hostname
            link_env = links.start_env(c, self.get)  # legacy links: running targets, their variables
            bundle = bundle_mod.write_bundle(c, self.rootfs_spec(c), self._running_pid, self._init_path(c), link_env,
                                             userns.runtime_spec(self.remap, c.host_config, self._running_pid))
            shim = ShimClient(bundle)
            pid = shim.spawn()
        except GuestError as e:  # an attach waiting for the start must hear of it too
            self._record_start_failure(c, str(e), getattr(e, "exit_code", 128))
            raise
        try:
            if c.host_config.get("OomScoreAdj"):
                _set_oom_score_adj(pid, c.host_config["OomScoreAdj"])  # inherited by all it starts
            for hook in self.hooks:
                hook.on_start(c, pid)
            for pa in c.pending_attaches:
                if not pa.cancelled:
                    pa.sock = shim.attach(pa.stdin, pa.stdout, pa.stderr)
                pa.ready.set()
            c.pending_attaches = []
            size = c.host_config.get("ConsoleSize") or [0, 0]
            if c.config.get("Tty") and len(size) == 2 and all(size):
                shim.resize(int(size[0]), int(size[1]))  # sized before the process can ask
            shim.start()
        except GuestError as e:
            code = getattr(e, "exit_code", None) or 128
            try:
                shim.kill(signal.SIGKILL)
            except GuestError:
                pass
            self._record_start_failure(c, str(e), code)
            raise
        st = c.state
        st.update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                  Dead=False, Pid=pid, ExitCode=0, Error="", StartedAt=now_rfc3339())
        c.shim = shim
        c.cgroup_paths = None
        if self.health is not None:
            self.health.reset(c)
        self.store.save(c)
        self._emit(c, "start")
        threading.Thread(target=self._monitor, args=(c, shim), name="monitor-" + c.id[:12], daemon=True).start()

    def _remove_quietly(self, c):
        try:
            self.remove(c.id, force=True)
        except GuestError:
            pass

    def _record_start_failure(self, c, message, code):
        st = c.state
        st.update(Status="exited" if st.get("StartedAt") != ZERO_TIME else "created", Running=False,
                  Pid=0, ExitCode=code, Error=message, FinishedAt=now_rfc3339())
        for pa in c.pending_attaches:
            pa.ready.set()
        c.pending_attaches = []
        c.exit_generation += 1
        c.changed.notify_all()
        self.store.save(c)
        if c.host_config.get("AutoRemove"):
            threading.Thread(target=self._remove_quietly, args=(c,), daemon=True).start()

    # ---- exit -----------------------------------------------------------------------------
    def _monitor(self, c, shim):
        result = None
        while not self.stopping:
            try:
                result = shim.wait()
                break
            except GuestError:
                result = shim.read_exit()
                if result is None and _shim_alive(shim):
                    time.sleep(0.1)
                    continue
                break
        if self.stopping:
            return  # the engine is going down; the shim lives on and restore() picks it up
        self._on_exit(c, result)

    def _on_exit(self, c, result):
        if result is None:
            result = {"exit_code": 255, "oom_killed": False, "finished_at": now_rfc3339(),
                      "error": "container process disappeared (its supervisor died)"}
        restart = False
        with c.lock:
            if not c.running:
                return
            st = c.state
            st.update(Status="exited", Running=False, Paused=False, Pid=0,
                      ExitCode=int(result.get("exit_code", 255)), OOMKilled=bool(result.get("oom_killed")),
                      Error=result.get("error") or "", FinishedAt=result.get("finished_at") or now_rfc3339())
            c.shim = None
            if self.health is not None:
                self.health.sync(c)  # stops probing; the status becomes unhealthy
            for hook in self.hooks:
                try:
                    hook.on_stop(c)
                except Exception:
                    log.exception("stop hook failed for %s", c.id)
            c.exit_generation += 1
            self.store.save(c)
            if st["OOMKilled"]:
                self._emit(c, "oom")
            self._emit(c, "die", exitCode=str(st["ExitCode"]))
            restart = self._should_restart(c)
            if restart:
                st.update(Restarting=True, Status="restarting")
            c.changed.notify_all()
        if c.host_config.get("AutoRemove") and not restart:
            try:
                self.remove(c.id, force=True, volumes=True)  # --rm takes anonymous volumes too
            except NotFound:
                pass
            except GuestError:
                log.exception("auto-remove of %s failed", c.id)
        elif restart:
            threading.Thread(target=self._restart_later, args=(c,), daemon=True).start()

    def _should_restart(self, c):
        rp = c.host_config.get("RestartPolicy") or {}
        policy = rp.get("Name") or "no"
        if c.stop_requested or self.stopping or policy == "no":
            return False
        if policy == "on-failure":
            mx = rp.get("MaximumRetryCount") or 0
            return c.state["ExitCode"] != 0 and (mx == 0 or c.data["RestartCount"] < mx)
        return True

    def _restart_later(self, c):
        delay = min(0.1 * (2 ** min(c.data["RestartCount"], 10)), 60.0)
        time.sleep(delay)
        with c.lock:
            if c.removed or c.stop_requested or c.running or self.stopping:
                c.state["Restarting"] = False
                if not c.running and not c.removed:
                    c.state["Status"] = "exited"
                return
            c.data["RestartCount"] += 1
            c.state["Restarting"] = False
            try:
                self._start_locked(c)
            except GuestError:
                log.warning("restart of %s failed", c.id)

    # ---- stop / kill ----------------------------------------------------------------------
    def kill(self, ref, sig=None):
        c = self.get(ref)
        signum = parse_signal(sig) if sig not in (None, "") else signal.SIGKILL
        with c.lock:
            if not c.running or c.shim is None:
                raise Conflict("Cannot kill container: %s: container %s is not running" % (ref, c.id))
            if signum == signal.SIGKILL:
                c.stop_requested = True
            gen = c.exit_generation
            c.shim.kill(signum)
            self._emit(c, "kill", signal=str(signum))
            if signum == signal.SIGKILL:
                # dockerd returns from a SIGKILL once the container has exited, so that an
                # inspect or rm straight after sees it stopped; bounded, as dockerd's is.
                end = time.monotonic() + 30
                while c.exit_generation == gen and c.running and time.monotonic() < end:
                    c.changed.wait(0.5)

    def stop(self, ref, timeout=None, sig=None):
        c = self.get(ref)
        with c.lock:
            if not c.running and c.state.get("Restarting"):
                # dockerd's: a stop between a restart policy's runs cancels the next one
                c.stop_requested = True
                c.state.update(Restarting=False, Status="exited")
                self.store.save(c)
                self._emit(c, "stop")
                return
            if not c.running:
                raise NotModified("container already stopped")
            c.stop_requested = True
            if timeout is None:
                timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = 10
            signum = parse_signal(sig or c.config.get("StopSignal") or "SIGTERM")
            gen = c.exit_generation
            shim = c.shim
            if c.state.get("Paused"):
                self._thaw(c)
            try:
                shim.kill(signum)
            except GuestError:
                pass
            self._emit(c, "kill", signal=str(signum))
            deadline = None if timeout < 0 else time.monotonic() + timeout
            while c.exit_generation == gen and c.running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                c.changed.wait(min(left, 1.0) if left is not None else 1.0)  # a huge -t overflows wait()
            if c.exit_generation == gen and c.running:
                try:
                    shim.kill(signal.SIGKILL)
                except GuestError:
                    pass
                self._emit(c, "kill", signal="9")
                end = time.monotonic() + 30
                while c.exit_generation == gen and c.running and time.monotonic() < end:
                    c.changed.wait(1.0)
        self._emit(c, "stop")

    def cgroup(self, c):
        """The running container's cgroup, where its shim put it (asked once per start)."""
        from ..runtime.cgroups import Cgroup
        if c.cgroup_paths is None and c.shim is not None:
            try:
                c.cgroup_paths = c.shim.state().get("cgroup_paths") or {}
            except GuestError:
                pass
        return Cgroup(c.id, paths=c.cgroup_paths or None)

    def _thaw(self, c):
        self.cgroup(c).thaw()
        c.state["Paused"] = False
        c.state["Status"] = "running"

    def restart(self, ref, timeout=None, sig=None):
        c = self.get(ref)
        try:
            self.stop(c.id, timeout, sig)
        except NotModified:
            pass
        with c.lock:
            if not c.running:
                c.stop_requested = False
                self._start_locked(c)
        self._emit(c, "restart")

    # ---- wait -----------------------------------------------------------------------------
    def wait_begin(self, ref, condition="not-running"):
        """Register a wait for ``condition``; ``wait_end`` blocks until it holds.

        Exits count from this call on, so it comes before the client hears that the wait is on:
        docker run starts the container once the wait's headers arrive, and an exit recorded
        before the registration would never end a ``next-exit`` wait. Raises NotFound or
        InvalidParameter (before any header).
        """
        c = self.get(ref)
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter("invalid condition: %s" % condition)
        with c.lock:
            return PendingWait(c, condition, c.exit_generation)

    def wait_end(self, pw, stop=lambda: False):
        """Block until ``pw``'s condition holds; returns {"StatusCode": N, "Error": …}, or None
        once ``stop()`` is true."""
        c = pw.container
        with c.lock:
            while True:
                if pw.condition == "removed":
                    if c.removed:
                        break
                elif pw.condition == "next-exit":
                    if c.exit_generation != pw.generation:
                        break
                elif c.exit_generation != pw.generation or (not c.running and not c.state.get("Restarting")):
                    # dockerd's not-running wait ends at the first exit, even when a restart
                    # policy brings the container back up right after.
                    break
                if stop():
                    return None
                c.changed.wait(0.5)
            err = c.state.get("Error") or None
            return {"StatusCode": c.state.get("ExitCode", 0), "Error": {"Message": err} if err else None}

    # ---- attach ---------------------------------------------------------------------------
    def attach_begin(self, ref, stdin, stdout, stderr):
        """Register an attach; call before answering the client (which then starts the container).

        Returns a socket (running container), a PendingAttach (before start: ``attach_wait``
        gives the socket once start connects it), or None (the container has exited).
        """
        c = self.get(ref)
        with c.lock:
            if c.running and c.shim is not None:
                return c.shim.attach(stdin, stdout, stderr)
            if c.state["Status"] != "created" and not c.state.get("Restarting") and c.state.get("Status") != "exited":
                return None
            pa = PendingAttach(stdin, stdout, stderr)
            pa.container = c
            c.pending_attaches.append(pa)
            return pa

    def attach_wait(self, pa, keep_waiting=lambda: True):
        """The socket of a PendingAttach once start connected it; None if cancelled."""
        while not pa.ready.wait(0.5):
            if not keep_waiting():
                self.attach_cancel(pa)
                return None
        return pa.sock

    def attach_cancel(self, pa):
        c = pa.container
        pa.cancelled = True
        with c.lock:
            if pa in c.pending_attaches:
                c.pending_attaches.remove(pa)
        if pa.sock is not None:
            try:
                pa.sock.close()
            except OSError:
                pass

    def resize(self, ref, h, w):
        c = self.get(ref)
        with c.lock:
            if not c.running or c.shim is None:
                raise Conflict("Container %s is not running" % c.id)
            if not c.config.get("Tty"):
                return  # nothing to size; dockerd's shim ignores it too (was a 500)
            c.shim.resize(h, w)

    # ---- remove / rename --------------------------------------------------------------------
    def remove(self, ref, force=False, volumes=False):
        c = self.get(ref)
        with c.lock:
            if c.removing and not c.removed:
                raise Conflict("removal of container %s is already in progress" % c.name)
            if c.running:
                if not force:
                    raise Conflict("cannot remove container \"/%s\": container is running: stop the container "
                                   "before removing or force remove" % c.name)
                c.stop_requested = True
                c.removing = True
                gen = c.exit_generation
                try:
                    c.shim.kill(signal.SIGKILL)
                except GuestError:
                    pass
                end = time.monotonic() + 30
                while c.exit_generation == gen and c.running and time.monotonic() < end:
                    c.changed.wait(0.5)
            c.removing = True
            self._run_remove_hooks(c, volumes)
            self.store.remove(c)
            shutil.rmtree(os.path.join(self.rootfs_root, c.id), ignore_errors=True)
            c.changed.notify_all()
        self._emit(c, "destroy")

    def _run_remove_hooks(self, c, volumes):
        for hook in self.hooks:
            try:
                hook.on_remove(c, volumes)
            except Exception:
                log.exception("remove hook failed for %s", c.id)

    def rename(self, ref, new):
        if not new or not _NAME_OK.match(new):
            raise InvalidParameter("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" % new)
        c = self.get(ref)
        old = c.name
        if new.lstrip("/") == old:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self.store.rename(c, new.lstrip("/"))
        self._emit(c, "rename", oldName="/" + old)

    def in_use_images(self):
        return {c.data["Image"] for c in self.store.all()}

    # ---- engine restart ---------------------------------------------------------------------
    def restore(self):
        """After an engine (re)start: reconnect to live shims; mark the dead as exited."""
        for c in self.store.all():
            with c.lock:
                if not c.running:
                    if c.state.get("Status") in ("restarting", "running"):
                        c.state.update(Status="exited", Restarting=False)
                        self.store.save(c)
                    continue
                shim = ShimClient(c.bundle)
                if _shim_alive(shim):
                    c.shim = shim
                    c.cgroup_paths = None
                    if self.health is not None and not c.state.get("Paused"):
                        self.health.reset(c)  # as dockerd's restore: starting again
                    threading.Thread(target=self._monitor, args=(c, shim), daemon=True).start()
                    continue
            self._on_exit(c, shim.read_exit())

    def shutdown(self):
        self.stopping = True
        if self.health is not None:
            self.health.close()


def _set_oom_score_adj(pid, value):
    try:
        oom.set_score_adj(value, pid)
    except OSError as e:
        raise RuntimeFailure("cannot set the OOM score adjustment: %s" % e)


def _shim_alive(shim):
    try:
        return shim.state().get("status") != "exited"
    except GuestError:
        return False


def container_resolv_conf(dns, search, options, host_path="/etc/resolv.conf"):
    """The container's resolv.conf: the host's, loopback resolvers dropped, as docker does."""
    servers, searches, opts = [], [], []
    try:
        with open(host_path) as f:
            for line in f:
                p = line.split()
                if not p or p[0].startswith("#"):
                    continue
                if p[0] == "nameserver" and len(p) > 1 and not (p[1].startswith("127.") or p[1] == "::1"):
                    servers.append(p[1])
                elif p[0] == "search":
                    searches = p[1:]
                elif p[0] == "options":
                    opts = p[1:]
    except OSError:
        pass
    if dns:
        servers = list(dns)
    if search:
        searches = list(search)
    if options:
        opts = list(options)
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]  # docker's fallback when the host has only loopback
    out = ["nameserver %s" % s for s in servers]
    if searches:
        out.append("search " + " ".join(searches))
    if opts:
        out.append("options " + " ".join(opts))
    return "\n".join(out) + "\n"
