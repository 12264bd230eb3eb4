"""The one place that sequences a VM machine's start and stop (the record is ``record.py``).

VM mode's ``up_vm`` runs image → create → boot → ssh → deploy → engine → clock → tunnel →
ping, each a named stage (the steps themselves are in ``steps.py``), undoing what it started
when one fails; after a qemu boot, whose guest installs and starts the engine the boot brings
(``steps.engine_offer``), ssh → engine → tunnel → ping, with no SSH exec; ``down_vm``, ``destroy_vm`` and ``upgrade_vm`` complete the life cycle. A lock
per machine keeps two of them apart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..errors import MachineError
from . import stages, steps
from .record import Machine, load, lock

log = logging.getLogger(__name__)

# -- VM mode: the one place that sequences a start ------------------------------------------

# Seconds the tunnel agent started while QEMU loads a saved state tries QEMU's SSH port again while
# nothing listens there yet (QEMU's own bound on the load, qemu.py _resume, is 30 s and more).
RESUME_CONNECT_RETRY = 60
# The same after a boot whose guest said that sshd listens (its port is not asked first).
BOOT_CONNECT_RETRY = 10
# Stage name → what the progress line says, and what to do when it fails (NAME: the machine).
STAGES = {
    "recover": ("stopping what an interrupted `up` left running", "run `hostbridge down -f --machine NAME`"),
    "image": ("guest image", "the guest is assembled once from Debian's packages (the Debian mirror must be "
                             "reachable); or set vm.image_url and vm.image_sha256 to download a published one"),
    "create": ("creating the machine", "run `hostbridge destroy -f --machine NAME`, then `up` again"),
    "boot": ("booting the VM", "check the driver's message; QEMU's console: `hostbridge logs --serial --machine NAME`"),
    "ssh": ("waiting for SSH", "see `hostbridge logs --serial --machine NAME`"),
    "resume": ("resuming the guest (clock, shares)", "look inside with `hostbridge ssh --machine NAME`"),
    "deploy": ("deploying the engine", "look inside with `hostbridge ssh --machine NAME`"),
    "engine": ("starting the engine", "see `hostbridge logs --engine --machine NAME`"),
    "clock": ("syncing the guest clock", "look inside with `hostbridge ssh --machine NAME`"),
    "tunnel": ("starting the tunnel", "see `hostbridge tunnel status NAME`"),
    "ping": ("waiting for the engine", "see `hostbridge logs --engine --machine NAME`"),
}


class StageFailed(stages.StageFailed):
    """``up`` of a VM stopped at a named stage; ``cause`` is the error that stopped it."""

    def __init__(self, name, stage, cause):
        from .driver import GuestBootError

        # Other drivers' ssh hints lack the machine's name: the stage's hint wins there.
        super().__init__(name, stage, cause, hint=STAGES[stage][1].replace("NAME", name),
                         hint_first=stage == "ssh" and not isinstance(cause, GuestBootError))


class Interrupted(MachineError):
    """Ctrl-C stopped ``up``; what it had started was undone."""

    exit_code = 130


@dataclass
class UpResult:
    """What an ``up`` did (every mode's: ``modes.Machine.up``). ``stages`` holds (stage, seconds)
    in order; ``mode`` is the machine's; ``details`` the mode's own (native: the engine's status)."""

    name: str
    endpoint: str
    driver: str = ""
    already_running: bool = False
    created: bool = False
    booted: bool = False
    resumed: bool = False
    recovered: bool = False
    seconds: float = 0.0
    stages: list = field(default_factory=list)
    mode: str = "vm"
    details: dict = field(default_factory=dict)


class _Up:
    """One ``up`` of a vm machine: its stages, and the cleanup if one fails."""

    def __init__(self, record, created, progress, recovered=False, settings=None):
        self.record, self.created, self.recovered = record, created, recovered
        self.settings = settings  # (proxies, CA files) for the engine (steps.engine_settings)
        self.name, self.p = record.name, record.paths
        self.driver = None
        self.booted = False
        self.resumed = False
        self.early_tunnel = None  # the agent started while QEMU loads a saved state (steps.Background)
        self.stages = stages.Stages(self.name, STAGES, progress, error=StageFailed)
        self.progress = self.stages.progress
        self.timings = self.stages.timings
        self.stage = self.stages.run
        self.interrupted = False

    def on_sigint(self, signum, frame):
        # Libraries may turn a KeyboardInterrupt into their own error (paramiko's auth does):
        # remember that the user asked to stop, whatever the error that comes out.
        self.interrupted = True
        raise KeyboardInterrupt

    def run(self, ssh_timeout, image_url, image_sha256) -> str:
        from . import vmmode

        self.stages.on_failure(self._undo)  # first: whichever stage fails, the record leaves "starting"
        f = self.record.fields
        if self.record.driver == "qemu":
            # Every boot takes this hostbridge's guest (checked; a bad one is rebuilt): a new
            # hostbridge's guest replaces the system, never the data disk.
            # A warm `up` takes an intact cached image without a stage of its own.
            img = (None if self.created else steps.cached_guest_image(image_url, image_sha256)) or self.stage(
                "image", steps.guest_image, image_url, image_sha256, self.progress)
            f["image_dir"] = img.dir
            self.record.save()
        self.driver = vmmode.make_driver(self.record)
        self.stage("create", self.driver.create)
        if self.recovered and self.driver.state() not in ("stopped", "not-created"):
            # Whatever the dead `up` left running is in an unknown state: boot it afresh.
            self.stage("recover", self.driver.stop, force=True)
        offer = None
        if self.driver.state() != "running":
            self.booted = True
            if self.record.driver == "qemu":  # the engine and its settings go in with the boot
                offer = self.stage("boot", steps.engine_offer, self.record, self.settings)
            if hasattr(self.driver, "before_resume"):
                self.driver.before_resume = self._tunnel_while_resuming
            self.stage("boot", self.driver.start)
            for note in getattr(self.driver, "accel_notes", None) or []:
                self.progress("boot", "note: %s; using slower emulation" % note)
            for note in getattr(self.driver, "resume_notes", None) or []:
                self.progress("boot", "note: %s" % note)
        if self.booted and getattr(self.driver, "resumed", False) and self._quick_resume_fits():
            return self._quick_resume()
        if self.early_tunnel is not None:  # the saved state did not load: the VM boots, its agent comes later
            from ..tunnel import control

            self.early_tunnel = None
            try:
                control.stop_agent(self.p)
            except OSError as e:
                log.debug("stopping the tunnel agent started for the resume failed: %s", e)
        offered = {"engine_offered": True} if offer is not None else {}  # (only a qemu boot brings an offer)
        info = self.stage("ssh", self.driver.wait_ssh, ssh_timeout, **offered)
        self.resumed = self.booted and getattr(self.driver, "resumed", False)
        stale = None  # the guest's engine of another version, running
        if offer is None and hasattr(self.driver, "close_ready"):
            self.driver.close_ready()
        if offer is not None and not self.resumed:
            url, stale = self._engine_from_boot(info, offer)
            if url:
                self.stage("ping", steps.wait_ping, url)
                if self.created and (steps.wants_guest_bytecode(self.record.driver)
                                     or steps.wants_pycache_seed(self.record)):
                    self.stage("engine", steps.keep_guest_bytecode, self.record, info, url)
                return url
        conn = self.stage("deploy", steps.connect, self.record, info)
        try:
            if self.resumed:
                self.stage("resume", steps.resume_guest, conn, self.driver)
            if self.resumed and _engine_current(self.record) and not _settings_changed(self.record, self.settings):
                # The engine ran on through the save: nothing to deploy or start, the clock is set.
                from .. import deploy

                layout = deploy.Layout.from_dict(f["layout"])
            else:
                layout, old = self.stage("deploy", steps.deploy_engine, conn, self.record)
                fresh = layout.to_dict() != self.record.fields.get("layout")  # copied now, not found there
                self.stage("engine", steps.engine_settings, conn, self.record, layout, self.settings)
                self.stage("engine", steps.start_engine, conn, layout, old or stale)
                if fresh:
                    self.stage("engine", steps.keep_engine_bytecode, conn, layout, self.record.driver)
                self.stage("engine", steps.share_map, conn, self.record, layout)
                f["layout"] = layout.to_dict()
                self.record.save()
                self.stage("clock", steps.sync_clock, conn, self.driver)
        finally:
            conn.close()
        url = self.stage("tunnel", steps.start_tunnel, self.record, layout)
        self.stage("ping", steps.wait_ping, url)
        return url

    def _engine_from_boot(self, info, offer):
        """After a boot of a guest whose init installs the engine ``offer``ed (fw_cfg and a drive)
        and starts it: start the tunnel agent at once (its SSH login overlaps the engine's start),
        then wait for the guest to say its engine answers, with this host's version. No SSH exec.

        Returns:
            (endpoint URL, None); or (None, the guest's running engine of another version's
            layout, or None) when the engine must come over SSH (``deploy``) after all: the guest
            refused the offer, said another version, or nothing.
        """
        steps.pin_host_key(self.record, info)
        layout = steps.guest_layout()
        # The guest said that sshd listens (wait_ssh did not ask it): the agent tries again briefly.
        tunnel = steps.Background(steps.start_tunnel, self.record, layout, BOOT_CONNECT_RETRY)
        try:
            said, detail = self.stage("engine", self.driver.wait_engine)
        except BaseException:
            tunnel.settle()
            raise
        if said == "ready" and detail == offer["version"]:
            self.stage("clock", steps.sync_clock, None, self.driver)  # while the agent logs in
            url = self.stage("tunnel", tunnel.result)
            steps.took_offer(self.record, offer, self.settings)
            return url, None
        tunnel.settle()
        stale = None
        if said == "ready":
            stale = steps.guest_layout()
            stale.version = detail or "unknown"
            detail = "the guest runs engine %s, not %s" % (stale.version, offer["version"])
        self.progress("engine", "note: %s; deploying the engine over SSH" % detail)
        return None, stale

    def _quick_resume_fits(self):
        """A resumed guest needs no SSH from ``up`` itself: it has the command channel, its engine
        is this hostbridge's (the record says which one ran at the save) and its settings are."""
        f = self.record.fields
        channel = getattr(self.driver, "has_command_channel", lambda: False)()
        return bool(channel and f.get("layout") and _engine_current(self.record)
                    and not _settings_changed(self.record, self.settings))

    def _tunnel_while_resuming(self, info):
        """The driver's ``before_resume``: a resume that will need no SSH from ``up`` starts the tunnel
        agent now, before QEMU loads the state, so that the agent's start (a Python process importing
        paramiko) overlaps the load; held, it logs in once ``_quick_resume`` lets it (the VM runs).
        Best effort: when it cannot start here, ``_quick_resume`` starts it."""
        from .. import deploy
        from ..tunnel import control

        if not self._quick_resume_fits():
            return
        try:
            layout = deploy.Layout.from_dict(self.record.fields["layout"])
            control.hold(self.p)  # here, not in the thread: the release may come first
        except Exception as e:
            log.debug("the tunnel agent of %s is started after the resume: %s", self.name, e)
            return

        def pin_and_start():  # pinning imports paramiko (~0.15 s): not before QEMU's launch
            steps.pin_host_key(self.record, info)  # QEMU's forwarded port may be another
            return steps.start_tunnel(self.record, layout, RESUME_CONNECT_RETRY, True)

        self.early_tunnel = steps.Background(pin_and_start)

    def _quick_resume(self):
        """After a resume: the tunnel agent (started as QEMU loaded the state, or now: its SSH
        handshake is what is left) logs in while the guest's init sets the clock and mounts the
        shares (``steps.resume_by_channel``)."""
        from .. import deploy

        self.resumed = True
        tunnel = self.early_tunnel
        if tunnel is not None:
            from ..tunnel import control

            control.release(self.p)  # the VM runs: the agent's SYN reaches the guest at once
        else:
            layout = deploy.Layout.from_dict(self.record.fields["layout"])
            steps.pin_host_key(self.record, self.driver.ssh_info())  # QEMU's forwarded port may be another
            tunnel = steps.Background(steps.start_tunnel, self.record, layout)
        try:
            self.stage("resume", steps.resume_by_channel, self.driver)
        except BaseException:
            tunnel.thread.join()  # the agent it may have started is stopped by _undo
            raise
        url = self.stage("tunnel", tunnel.result)
        self.stage("ping", steps.wait_ping, url)
        return url

    def cleanup(self):
        """Run the sequence's failure callbacks (``_undo`` among them)."""
        self.stages.cleanup()

    def _undo(self):
        """Undo what this ``up`` started: nothing is left half-running. Best effort: the error
        that stopped ``up`` is the one to report, so a failing cleanup step is only logged.

        A machine this ``up`` created is removed when the user interrupted it; after a failure
        it stays, stopped, so its logs can be read (``up`` again retries, ``destroy`` removes it).
        """
        from ..tunnel import control

        def attempt(fn, *args, **kw):
            try:
                return fn(*args, **kw)
            except Exception as e:
                log.warning("cleanup after a failed up of %s: %s failed: %s", self.name, fn.__name__, e)

        if hasattr(self.driver, "close_ready"):
            attempt(self.driver.close_ready)
        attempt(control.stop_agent, self.p)
        if self.created and self.interrupted:
            if self.driver is not None:
                attempt(self.driver.destroy)
            steps.remove_machine_files(self.p)
            return
        if self.booted and self.driver is not None:
            attempt(self.driver.stop, force=True)
        running = self.driver is not None and attempt(self.driver.state) == "running"
        stages.mark_done(self.record, "running" if running and not self.booted else "stopped")


def up_vm(name, driver=None, cpus=2, memory_mib=2048, disk_gib=20, shares=(), ssh_timeout=300.0, image_url="",
          image_sha256="", progress=None, resize_to=None, settings=None) -> UpResult:
    """Bring vm machine ``name`` up: create → boot → SSH → deploy → engine → clock → tunnel → /_ping.

    On a machine that runs already this only checks the tunnel agent and ``/_ping``. A failure
    undoes what this call started (the agent, a VM it booted) and keeps a machine it created,
    stopped, for its logs; Ctrl-C removes a machine it created. The record says ``starting``
    meanwhile, so an ``up`` that died is seen as such by the next one.

    Args:
        name: the machine.
        driver: "qemu" or "vagrant" for a new machine (None: the OS default); an existing
            machine keeps its driver.
        cpus, memory_mib, disk_gib, shares: a new machine's size and host folders (same path inside).
        ssh_timeout: seconds to wait for the guest's sshd.
        image_url, image_sha256: a published guest image (qemu) instead of building one.
        progress: ``(stage, text)`` callback, one call per stage.
        resize_to: {cpus, memory_mib, disk_gib} asked explicitly: an existing stopped machine
            is resized first (``resize.resize_vm``; a running one is refused).
        settings: (proxies, CA files) for the engine (``engine_settings``); None: left as they are.
    Returns:
        An ``UpResult``.
    Raises:
        StageFailed: a stage failed (``stage`` names it; the hint says what to do).
        MachineError: the machine is not a vm machine, or ``driver`` differs from its own.
    """
    from . import vmmode

    progress = progress or stages.noop
    t0 = time.monotonic()
    record = load(name)
    if record is not None and record.mode != vmmode.MODE:
        raise MachineError("machine %s is a %s machine, not a VM" % (name, record.mode), machine=name)
    if record is not None and record.fields.get("state") == vmmode.RUNNING and not _resizes(record, resize_to):
        url = vmmode.quick_endpoint(record)
        if url and _engine_current(record) and not _settings_changed(record, settings):
            return UpResult(name, url, record.driver, already_running=True, seconds=time.monotonic() - t0)
    with lock(name):
        record = load(name)
        created = record is None
        if created:
            chosen = vmmode.choose_driver(driver)
            if chosen not in vmmode.VM_DRIVERS:
                raise MachineError("the %s driver does not run VMs" % chosen, hint="use --driver qemu or vagrant",
                                   machine=name)
            shares, refused = vmmode.guest_shares(shares)
            for share in refused:
                progress("create", "note: not sharing %s: mounted at the same path it would hide the guest's own "
                                   "files" % share)
            record = Machine(name, vmmode.MODE, chosen, fields={
                "cpus": int(cpus), "memory_mib": int(memory_mib), "disk_gib": int(disk_gib),
                "shares": list(shares), "created_at": time.time()})
        elif driver and driver != record.driver:
            raise MachineError("machine %s uses the %s driver, not %s" % (name, record.driver, driver),
                               hint="destroy it first to change driver, or pick another --machine", machine=name)
        else:
            _resize(record, resize_to, progress)
        recovered = record.fields.get("state") == vmmode.STARTING  # we hold the lock: that `up` is gone
        if recovered:
            progress("recover", "note: a previous `up` of %s did not finish; starting over" % name)
        stages.mark_starting(record)
        run = _Up(record, created, progress, recovered, settings)
        try:
            url = _with_sigint(run.on_sigint, run.run, ssh_timeout, image_url, image_sha256)
        except BaseException as e:
            run.interrupted = run.interrupted or isinstance(e, KeyboardInterrupt)
            _ignoring_sigint(run.cleanup)
            if run.interrupted:
                stage = run.timings[-1][0] if run.timings else "start"
                raise Interrupted("machine %s: `up` interrupted at the %s stage; %s" % (
                    name, stage, "the machine was removed" if created else "what it started was stopped"),
                    machine=name, stage=stage) from None
            raise
        record.endpoint_url = url
        stages.mark_done(record, vmmode.RUNNING)
    return UpResult(name, url, record.driver, created=created, booted=run.booted, resumed=run.resumed,
                    recovered=recovered,
                    seconds=time.monotonic() - t0, stages=run.timings)


def _resizes(record, resize_to) -> bool:
    from .resize import plan

    return bool(resize_to and plan(record.fields, name=record.name, **resize_to))


def _resize(record, resize_to, progress):
    """An existing machine takes the size asked on ``up`` (it must be stopped)."""
    from .resize import describe, resize_vm

    changes = resize_vm(record, **resize_to) if resize_to else {}
    if changes:
        progress("create", "note: machine %s resized: %s" % (record.name, describe(changes)))


def _settings_changed(record, settings) -> bool:
    from ..engine_settings import fingerprint

    return settings is not None and record.fields.get("engine_settings") != fingerprint(*settings)


def _engine_current(record) -> bool:
    from .. import deploy

    return (record.fields.get("layout") or {}).get("version") == deploy.engine_version()


def _with_sigint(handler, fn, *args):
    """Run ``fn(*args)`` with ``handler`` for SIGINT (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    old = signal.signal(signal.SIGINT, handler)
    try:
        return fn(*args)
    finally:
        signal.signal(signal.SIGINT, old)


def _ignoring_sigint(fn):
    """Run ``fn`` with Ctrl-C deferred, so a cleanup is not cut short by a second one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGINT, old)


def down_vm(name, force=False, timeout=60.0, shutdown=False) -> dict:
    """Stop vm machine ``name``: its tunnel agent, then the VM. A running VM whose driver can is
    suspended (its state saved; the next ``up`` resumes it, containers still running), unless
    ``shutdown`` or ``force``: then it shuts down (the guest stops the engine), or is powered off.
    A VM with a share in use (9p) is shut down instead, with a note.

    Returns:
        {"was_running": bool, "suspended": bool, "size": bytes saved, "note": str}.
    Raises:
        MachineError: not a vm machine; VMError: the VM cannot be stopped, or its state could not be
        saved (it keeps running, its tunnel agent too).
    """
    from ..tunnel import control
    from . import vmmode

    with lock(name):
        record = vmmode.load_vm(name)
        drv = vmmode.make_driver(record)
        state = drv.state()
        result = {"was_running": state not in ("stopped", "not-created"), "suspended": False, "size": 0, "note": ""}
        control.stop_agent(record.paths)
        if state == "running" and drv.capabilities.suspend and not (force or shutdown):
            result.update(_suspend(record, drv, timeout))
        if not result["suspended"]:
            drv.stop(force=force, timeout=timeout)
        record.fields.update(state=vmmode.SUSPENDED if result["suspended"] else vmmode.STOPPED, up_pid=None)
        record.save()
    return result


def _suspend(record, drv, timeout):
    """Ready the guest (``steps.prepare_suspend``) and save the VM. A share in use: not suspended,
    with a note. A failed save raises, with the VM and its tunnel agent running again."""
    from ..errors import HostbridgeError
    from ..tunnel import control
    from . import suspend

    try:
        steps.prepare_suspend(record, drv)
        saved = drv.suspend(timeout=max(timeout, 60))
    except suspend.SharesBusy as e:
        return {"note": "%s; shut down instead" % e}
    except HostbridgeError:
        if drv.state() == "running":
            try:
                control.ensure_agent(record.paths, timeout=30)
            except HostbridgeError as e:
                log.warning("restarting the tunnel agent of %s failed: %s", record.name, e)
        raise
    return {"suspended": True, "size": saved.get("size", 0)}


def destroy_vm(name) -> None:
    """Stop vm machine ``name`` and remove every file of it (disk, keys, logs, sockets).

    Raises:
        MachineError: not a vm machine; VMError: the driver failed to remove it.
    """
    from ..tunnel import control
    from . import vmmode

    with lock(name):
        record = vmmode.load_vm(name)
        control.stop_agent(record.paths)
        vmmode.make_driver(record).destroy()
        steps.remove_machine_files(record.paths)


def upgrade_vm(name) -> dict:
    """Swap the engine in running vm machine ``name`` for this host's version and restart it;
    a qemu machine also gets this hostbridge's guest image, booted next time (its data disk,
    with images, containers and volumes, is never touched).

    Returns:
        {"from": old version, "to": new version, "image": the image dir for the next boot (qemu)}.
    Raises:
        MachineError: not running or not a vm machine; RemoteHostError: the copy failed.
    """
    from .. import deploy
    from . import vmmode

    with lock(name):
        record = vmmode.load_vm(name)
        if record.fields.get("state") != vmmode.RUNNING or not record.fields.get("layout"):
            raise MachineError("machine %s is not running" % name, hint="start it with `hostbridge up`", machine=name)
        old = deploy.Layout.from_dict(record.fields["layout"])
        with vmmode.connection(record) as conn:
            new = deploy.upgrade(conn, old, record.paths.engine_zipapp_dir)
        record.fields["layout"] = new.to_dict()
        if record.driver == "qemu":
            record.fields["image_dir"] = steps.guest_image("", "").dir
        record.save()
        steps.wait_ping(vmmode.endpoint_for(name))
    return {"from": old.version, "to": new.version, "image": record.fields.get("image_dir")}
