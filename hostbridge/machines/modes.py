"""Every machine behind one small interface: ``Machine`` with ``up``, ``down``, ``status``,
``endpoint``, ``upgrade`` and ``destroy``, implemented for the three modes.

- ``NativeMachine``: the engine on this Linux host (``native.py``).
- ``VMMachine``: a QEMU or Vagrant VM (sequenced by ``machine.py``, read by ``vmmode.py``).
- ``RemoteMachine``: a Linux host reached over SSH (``remote.py``; added by ``hostbridge remote add``).

``select`` picks the implementation for a name (its record's mode, else the driver asked for);
the CLI and ``client.endpoint`` go through it instead of testing modes themselves. The record
is ``record.Machine`` for all three; the staged sequencer is ``stages.Stages``.

This module is on the endpoint path of every command (``hostbridge ps`` with a VM machine):
it imports nothing heavy at module level; each method imports what its mode needs.
Contracts are stated per method, lima-style; every method may raise ``MachineError`` (and
its subclasses: ``VMError``, ``StageFailed``, ``NotRootError``) with a one-line message and a hint.
"""

from __future__ import annotations

from ..errors import MachineError
from .record import MODES, load

NATIVE_NAME = "default"
VM_DRIVERS = ("qemu", "vagrant")


class UpOptions:
    """What ``up`` is asked for; None leaves a setting to the config (``vm.*``, ``native.*``). An
    existing machine keeps its own driver and shares (its size changes only as asked, when stopped).

    Attributes:
        driver: "qemu", "vagrant" for a new VM (None: config ``machines.driver``, else the OS default).
        cpus, memory_mib: a new VM's size; an existing stopped VM is resized to them.
        disk: a new VM's disk, GiB or a size text ("20G"); an existing stopped VM's disk grows to it.
        shares: a new VM's host folders (empty: config ``vm.shares``).
        timeout: seconds to wait (native: for the engine; VM: for the guest's SSH).
    """

    def __init__(self, driver=None, cpus=None, memory_mib=None, disk=None, shares=(), timeout=None):
        self.driver, self.cpus, self.memory_mib, self.disk = driver, cpus, memory_mib, disk
        self.shares, self.timeout = tuple(shares or ()), timeout


class Machine:
    """One machine, whatever its mode. Construct it cheaply: no I/O until a method is called.

    Args:
        name: the machine's name.
        record: its ``record.Machine``, or None when it has none (yet).
        config: a ``hostbridge.config.Config`` (native mode reads ``native.*``; defaults there).

    Attributes:
        mode: "native", "vm" or "remote".
    """

    mode = ""

    def __init__(self, name, record=None, config=None):
        self.name, self.record, self.config = name, record, config

    def up(self, options: UpOptions | None = None, progress=None):
        """Start the machine and its engine; return once the engine answers ``/_ping`` locally.

        Up of a running machine is a no-op returning its endpoint (``already_running``). A
        machine with no record is created (VM) first. Blocks until the engine answers or a
        stage fails; a failure undoes what this call started.

        Args:
            options: an ``UpOptions`` (None: defaults).
            progress: ``(stage, text)`` callback, one call per stage.
        Returns:
            A ``machine.UpResult`` (``endpoint``, ``already_running``, ``details``: the mode's own).
        Raises:
            StageFailed: a named stage failed (VM); MachineError: the machine cannot start.
        """
        raise NotImplementedError

    def down(self, force=False, timeout=60.0, shutdown=False) -> dict:
        """Stop the machine's engine (and its VM); containers, images and volumes are kept.

        Down of a stopped machine is not an error. Blocks until stopped (at most ``timeout`` s
        before forcing, or failing). A VM whose driver can is suspended (its containers still
        run after the next ``up``) unless ``shutdown`` or ``force``.

        Returns:
            {"was_running": bool, …the mode's own ("pid" for native; "suspended", "size",
            "note" for a VM)}.
        Raises:
            MachineError: the machine cannot be stopped, or this mode has no ``down`` (remote).
        """
        raise NotImplementedError

    def status(self) -> dict:
        """What the machine and its engine are doing now. Never starts anything.

        Returns:
            {"mode", "ok": bool (the engine answers), "rows": [(label, value)] to show, in order,
            "row": {field: value} for ``--format`` (docker-style names: ``Name``, ``Mode``,
            ``State``, ``Endpoint``, ``Engine``… the mode's own), …the mode's own fields}.
        Raises:
            MachineError: the machine does not exist.
        """
        raise NotImplementedError

    def endpoint(self) -> str:
        """The local engine endpoint URL (``unix:///…``, ``npipe:////./pipe/…``). Cheap on the
        usual path (no SSH, no driver); restarts a dead tunnel agent when the machine runs.

        Raises:
            MachineError: the machine is not running, or has no endpoint yet.
        """
        raise NotImplementedError

    def upgrade(self, note=None) -> dict:
        """Swap the engine for this hostbridge's version and restart it; data is kept.

        Args:
            note: ``(text)`` callback for a note to the user (remote: a proxy the far side
                cannot reach), called before the upgrade starts.
        Returns:
            {"from": old version, "to": new version, …the mode's own}.
        Raises:
            MachineError: the machine is not running, or this mode has no upgrade (native).
        """
        raise NotImplementedError

    def destroy(self) -> None:
        """Stop the machine and delete every file of it (disk, keys, logs).

        Raises:
            MachineError: the machine does not exist, or this mode cannot be destroyed here.
        """
        raise NotImplementedError

    def _missing(self):
        return MachineError("no machine named %r" % self.name, hint="see `hostbridge ls`", machine=self.name)

    def _not_a_vm(self):
        return MachineError("machine %s is not a VM" % self.name, hint="see `hostbridge ls`", machine=self.name)


class NativeMachine(Machine):
    """The engine on this Linux host, run as root; its socket is the endpoint."""

    mode = "native"

    def _engine(self):
        from .native import NativeEngine

        return NativeEngine.from_config(self.config)

    def up(self, options=None, progress=None):
        from .machine import UpResult

        options = options or UpOptions()
        engine = self._engine()
        (progress or (lambda stage, text: None))("engine", "starting the hostbridge engine")
        st = engine.start(timeout=options.timeout or self.config["native.start_timeout"])
        # details: the engine's start result plus its socket group (the CLI's note on who may use it)
        return UpResult(self.name, st["endpoint"], "native", already_running=st["already_running"], mode=self.mode,
                        details=dict(st, group=engine.group))

    def down(self, force=False, timeout=60.0, shutdown=False):
        pid = self._engine().stop(timeout=timeout)
        return {"was_running": pid is not None, "pid": pid}

    def status(self):
        st = self._engine().status()
        state = "running" if st["responding"] else ("starting or stuck" if st["running"] else "stopped")
        rows = [("machine", "%s (native)" % self.name), ("state", state), ("pid", st["pid"] or "-"),
                ("socket", st["socket"]), ("log", st["log"])]
        row = {"Name": self.name, "Mode": self.mode, "Driver": "", "State": state, "Engine": st["responding"],
               "Pid": st["pid"], "Socket": st["socket"], "Log": st["log"], "Endpoint": st["endpoint"]}
        return dict(st, mode=self.mode, ok=bool(st["responding"]), rows=rows, row=row)

    def endpoint(self):
        url = self.record.endpoint_url if self.record is not None else ""
        return url or "unix://" + self.config["native.socket"]

    def upgrade(self, note=None):
        raise MachineError("the native engine runs from this hostbridge's own files", hint="`hostbridge down` then "
                           "`hostbridge up` restarts it", machine=self.name)

    def destroy(self):
        if self.record is None:
            raise self._missing()
        raise self._not_a_vm()


class VMMachine(Machine):
    """A QEMU or Vagrant VM, with the engine deployed in it and a tunnel to its socket."""

    mode = "vm"

    def up(self, options=None, progress=None):
        from . import machine as machines
        from . import vmmode

        o, c = options or UpOptions(), self.config
        return machines.up_vm(
            self.name, driver=o.driver or c["vm.driver"] or None, cpus=o.cpus or c["vm.cpus"],
            memory_mib=o.memory_mib or c["vm.memory"], disk_gib=vmmode.parse_size_gib(o.disk or c["vm.disk"]),
            shares=o.shares or vmmode.parse_shares(c["vm.shares"]), ssh_timeout=o.timeout or c["vm.start_timeout"],
            image_url=c["vm.image_url"], image_sha256=c["vm.image_sha256"], progress=progress,
            resize_to={"cpus": o.cpus, "memory_mib": o.memory_mib,
                       "disk_gib": vmmode.parse_size_gib(o.disk) if o.disk else None},
            settings=self._engine_settings())

    def _engine_settings(self):
        """(proxies, CA files) for the guest's engine: the host's, a loopback proxy reached
        through the address the guest sees this host at (``engine_settings.VM_HOST_ALIAS``)."""
        from .. import engine_settings

        proxies, _ = engine_settings.proxies(self.config, host_alias=engine_settings.VM_HOST_ALIAS)
        return proxies, engine_settings.ca_files(self.config)

    def down(self, force=False, timeout=60.0, shutdown=False):
        from . import machine as machines

        if self.record is None:
            raise self._missing()
        return machines.down_vm(self.name, force=force, timeout=timeout, shutdown=shutdown)

    def status(self):
        from . import vmmode

        if self.record is None:
            raise self._missing()
        st = vmmode.status(self.name)
        rows = [("machine", "%s (vm, %s)" % (self.name, st["driver"])), ("state", st["state"]),
                ("engine", ("running " + (st["engine_version"] or "")) if st["engine"] else "not answering"),
                ("tunnel", st["tunnel"]), ("endpoint", st["endpoint"] or "-"),
                ("ssh", "%s:%s" % (st["ssh_host"], st["ssh_port"]) if st["ssh_port"] else "-"),
                ("size", "%s CPUs, %s MiB, %s GiB disk" % (st["cpus"], st["memory_mib"], st["disk_gib"])),
                ("shares", ", ".join(st["shares"]) or "-")]
        row = {"Name": self.name, "Mode": self.mode, "Driver": st["driver"], "State": st["state"],
               "Engine": st["engine"], "EngineVersion": st["engine_version"] or "", "Tunnel": st["tunnel"] or "",
               "Endpoint": st["endpoint"] or "", "SSHPort": st["ssh_port"], "CPUs": st["cpus"],
               "MemoryMiB": st["memory_mib"], "DiskGiB": st["disk_gib"], "Shares": list(st["shares"])}
        return dict(st, mode=self.mode, ok=bool(st["engine"]), rows=rows, row=row)

    def endpoint(self):
        from . import vmmode

        return vmmode.endpoint_for(self.name)

    def upgrade(self, note=None):
        from . import machine as machines

        if self.record is None:
            raise self._missing()
        return machines.upgrade_vm(self.name)

    def destroy(self):
        from . import machine as machines

        if self.record is None:
            raise self._missing()
        machines.destroy_vm(self.name)


class RemoteMachine(Machine):
    """A Linux host reached over SSH. ``hostbridge remote add``/``rm`` create and forget it
    (they need a URL and keys): here ``up`` reconnects, and ``down``/``destroy`` refuse."""

    mode = "remote"

    def _remote_only(self):
        return MachineError("machine %s is a remote host" % self.name, hint="manage it with `hostbridge remote`",
                            machine=self.name)

    def up(self, options=None, progress=None):
        from .machine import UpResult

        # The tunnel agent is restarted and the far engine checked (started, upgraded) as needed.
        return UpResult(self.name, self.endpoint(), "", already_running=True, mode=self.mode)

    def down(self, force=False, timeout=60.0, shutdown=False):
        raise self._remote_only()

    def status(self):
        from ..tunnel import control

        st = control.tunnel_status(self.record.paths)
        rows = [("machine", "%s (remote)" % self.name), ("tunnel", st["state"]),
                ("endpoint", st.get("endpoint") or "-")]
        row = {"Name": self.name, "Mode": self.mode, "Driver": "", "State": st["state"], "Tunnel": st["state"],
               "Endpoint": st.get("endpoint") or "", "Engine": st["state"] == "connected",
               "Host": st.get("host") or ""}
        return dict(st, mode=self.mode, ok=st["state"] == "connected", rows=rows, row=row)

    def endpoint(self):
        from . import remote

        return remote.endpoint_for(self.name)

    def upgrade(self, note=None):
        from . import remote

        return remote.upgrade_remote(self.name, settings=self._engine_settings(note))

    def _engine_settings(self, note=None):
        """(proxies, CA files) for the far engine from the config and this host's environment;
        a loopback proxy the far side cannot reach is left out, said through ``note``."""
        from .. import config as configuration
        from .. import engine_settings

        cfg = self.config if self.config is not None else configuration.load()
        proxies, notes = engine_settings.proxies(cfg, remote=True)
        for text in notes:
            (note or (lambda t: None))(text)
        return proxies, engine_settings.ca_files(cfg)

    def destroy(self):
        raise self._not_a_vm()


CLASSES = {"native": NativeMachine, "vm": VMMachine, "remote": RemoteMachine}
assert set(CLASSES) == set(MODES)


def for_record(record, config=None) -> Machine:
    """The ``Machine`` of an existing record."""
    return CLASSES[record.mode](record.name, record, config)


def select(name, config, driver=None) -> Machine:
    """The machine called ``name``: its record's mode, else (no record) what ``driver``, the
    config's ``machines.driver`` or the OS default makes of it.

    Args:
        name: the machine's name.
        config: a ``Config`` (``machines.driver``, ``native.*``).
        driver: the ``--driver`` asked for, or None.
    Returns:
        A ``Machine`` (its ``record`` None when it has none yet).
    Raises:
        MachineError: an unknown driver, or a name other than "default" for native mode.
        VMError: no VM driver is installed (macOS/Windows).
    """
    record = load(name)
    if record is not None:
        return for_record(record, config)
    wanted = driver or config["vm.driver"]
    if wanted in VM_DRIVERS:
        return VMMachine(name, None, config)
    if wanted not in ("", "native"):
        raise MachineError("unknown driver %r" % wanted, hint="use one of: native, qemu, vagrant", machine=name)
    if name != NATIVE_NAME:
        raise MachineError("no machine named %r" % name,
                           hint="create a VM with `hostbridge up --machine %s --driver qemu`; the native machine is "
                                "called 'default'" % name, machine=name)
    if wanted == "native":
        return NativeMachine(name, None, config)
    from . import vmmode

    return (NativeMachine if vmmode.choose_driver(None) == "native" else VMMachine)(name, None, config)
