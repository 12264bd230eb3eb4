"""Machine commands: up, down, status, restart, destroy, upgrade, ls, ip, ssh, logs --serial/--engine.

Every machine, whatever its mode, is a ``vm.modes.Machine``: these commands call its ``up``,
``down``, ``status``, ``upgrade`` or ``destroy`` and say what happened (the words per mode are
below; what the modes do is in ``hostbridge.vm``).
"""

from __future__ import annotations

import functools
import logging
import os

import click

from ..errors import HostbridgeError, MachineError

VM_DRIVERS = ("qemu", "vagrant")
# The VM code logs for the record; what the user should see reaches them as progress lines.
logging.getLogger("hostbridge").addHandler(logging.NullHandler())


def machine_option(fn):
    """``--machine NAME`` on a machine command (same as the root group's ``-m``)."""

    @click.option("--machine", "machine_name", metavar="NAME", help="The machine (default: HOSTBRIDGE_MACHINE or config).")
    @functools.wraps(fn)
    def wrapper(*args, machine_name=None, **kw):
        if machine_name:
            app = click.get_current_context().obj
            app.flags = dict(app.flags, machine=machine_name)
            app._config = None
        return fn(*args, **kw)

    return wrapper


def _selected(app, driver=None):
    """The selected machine (a ``vm.modes.Machine``); a new one's mode comes from ``driver``/config/OS."""
    from ..vm import modes

    return modes.select(app.config["machine"], app.config, driver)


def _native(app):
    from ..vm.native import NativeEngine

    return NativeEngine.from_config(app.config)


def _progress(app):
    def show(stage, text):
        if stage == "native":  # the one step of a native start, said as it always was
            return app.status(text)
        app.status("[%s] %s…" % (stage, text) if not text.startswith("note:") else "[%s] %s" % (stage, text))

    return show


@click.command()
@machine_option
@click.option("--driver", type=click.Choice(("native",) + VM_DRIVERS), help="Driver for a new machine (default per OS).")
@click.option("--cpus", type=click.IntRange(1, 256), help="CPUs of a new VM (config vm.cpus).")
@click.option("--memory", type=click.IntRange(128), help="Memory of a new VM in MiB (config vm.memory).")
@click.option("--disk", metavar="SIZE", help="Disk of a new VM, e.g. 20G (config vm.disk).")
@click.option("--share", "shares", multiple=True, type=click.Path(file_okay=False, resolve_path=True),
              help="Host folder shared with a new VM, at the same path (C:\\x at /c/x) (repeatable; default: "
                   "config vm.shares: /Users on macOS, C:\\Users on Windows, ~ on Linux).")
@click.option("--timeout", type=float, help="Seconds to wait for the engine (native) or the VM's SSH.")
@click.pass_obj
def up(app, driver, cpus, memory, disk, shares, timeout):
    """Start the selected machine: create and boot a VM if needed, deploy the engine, open the tunnel."""
    from ..vm import modes

    machine = _selected(app, driver)
    options = modes.UpOptions(driver=driver, cpus=cpus, memory_mib=memory, disk=disk, shares=shares, timeout=timeout)
    result = machine.up(options, progress=_progress(app))
    _UP_REPORTS[machine.mode](app, machine.name, result)
    _write_context(app, machine.name, result.endpoint)


def _report_native_up(app, name, result):
    st = result.details
    if result.already_running:
        app.out("The hostbridge engine is already running (pid %s)." % st["pid"])
    else:
        app.out("The hostbridge engine is running (pid %s)." % st["pid"])
    app.out("Socket: %s\nLog:    %s\n\nTo use the docker CLI with it:\n  export DOCKER_HOST=%s"
            % (st["socket"], st["log"], st["endpoint"]))


def _report_vm_up(app, name, result):
    if result.already_running:
        app.out("Machine %s is already running." % name)
    else:
        app.out("Machine %s is running (%s, up in %.1f s)." % (name, result.driver, result.seconds))
        if app.verbosity > 0:
            app.out("Stages: " + ", ".join("%s %.1fs" % st for st in result.stages))
    # `hostbridge env` alone finds this machine unless it was picked by a flag for this command only.
    env_cmd = "hostbridge env %s" % name if app.config.origin["machine"] == "flag" else "hostbridge env"
    from .env import apply_line, detect_shell

    app.out("Endpoint: %s\n\nTo point the docker CLI at it:\n  %s"
            % (result.endpoint, apply_line(detect_shell(), env_cmd)))


def _report_remote_up(app, name, result):
    app.out("Machine %s (remote) is reachable at %s." % (name, result.endpoint))


# What `up` says, per mode (what it does is the same call for all).
_UP_REPORTS = {"native": _report_native_up, "vm": _report_vm_up, "remote": _report_remote_up}


def _write_context(app, name, endpoint):
    """Point docker context hostbridge-NAME at the machine and say how to select it (a warning
    when it cannot be written: the machine itself is up)."""
    from .. import contexts

    try:
        ctx = contexts.write(name, endpoint)
    except HostbridgeError as e:
        app.err("Warning: %s" % e)
        return
    app.out("Or select its docker context (made for you):\n  docker context use %s" % ctx)


# What `down` says, per mode: (it was running, it was not).
_DOWN_REPORTS = {"native": ("Stopped the hostbridge engine (pid {pid}).", "The hostbridge engine is not running."),
                 "vm": ("Stopped machine {name}.", "Machine {name} is not running.")}


@click.command()
@machine_option
@click.option("-f", "--force", is_flag=True, help="Power a VM off at once instead of shutting it down.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for it to stop.")
@click.pass_obj
def down(app, force, timeout):
    """Stop the selected machine (containers, images and volumes are kept)."""
    machine = _selected(app)
    res = machine.down(force=force, timeout=timeout)
    stopped, idle = _DOWN_REPORTS[machine.mode]
    app.out((stopped if res["was_running"] else idle).format(name=machine.name, **res))


@click.command()
@machine_option
@click.pass_obj
def status(app):
    """Show whether the selected machine and its engine run (exit 1 when the engine does not answer)."""
    st = _selected(app).status()
    app.out("\n".join("%-10s%s" % (label + ":", value) for label, value in st["rows"]))
    if not st["ok"]:
        raise click.exceptions.Exit(1)


@click.command()
@machine_option
@click.option("--timeout", type=float, help="Seconds to wait for the VM's SSH.")
@click.pass_context
def restart(ctx, timeout):
    """Stop the selected machine, then start it again."""
    ctx.invoke(down)
    ctx.invoke(up, timeout=timeout)


@click.command()
@machine_option
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def destroy(app, force):
    """Stop the selected VM and delete it: its disk, keys, logs and every other file."""
    machine = _selected(app)
    if machine.mode != "vm" or machine.record is None:
        machine.destroy()  # refuses: says why
    if not force and not click.confirm("Delete machine %s and everything in it (containers, images)?" % machine.name,
                                       err=True):
        raise click.exceptions.Exit(1)
    machine.destroy()
    app.out("Destroyed machine %s." % machine.name)
    from .. import contexts

    try:
        if contexts.remove(machine.name):
            app.out("Removed docker context %s." % contexts.context_name(machine.name))
    except HostbridgeError as e:
        app.err("Warning: %s" % e)


@click.command()
@machine_option
@click.pass_obj
def upgrade(app):
    """Replace the engine in the selected VM with this hostbridge's version (data is kept)."""
    machine = _selected(app)
    res = machine.upgrade()
    app.out("Machine %s: engine %s -> %s" % (machine.name, res["from"], res["to"]))


@click.command("ls")
@click.pass_obj
def ls(app):
    """List machines."""
    from ..vm import vmmode

    rows = vmmode.list_machines()
    app.out("%-16s %-8s %-8s %-24s %s" % ("NAME", "MODE", "DRIVER", "STATE", "ENDPOINT"))
    for r in rows:
        app.out("%-16s %-8s %-8s %-24s %s" % (r["name"], r["mode"], r["driver"], r["state"], r["endpoint"]))


def _vm_record(app):
    from ..vm import vmmode

    return vmmode.load_vm(app.config["machine"])


@click.command()
@machine_option
@click.pass_obj
def ip(app):
    """Print the address the selected VM is reached at from this host."""
    record = _vm_record(app)
    target = record.fields.get("ssh")
    if not target:
        raise MachineError("machine %s has not been started yet" % record.name, hint="run `hostbridge up`",
                           machine=record.name)
    app.out(target["hostname"])


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@machine_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ssh(app, command):
    """Log into the selected VM (as its SSH user), or run COMMAND there: hostbridge ssh -- CMD."""
    import shutil

    from ..vm import vmmode

    record = _vm_record(app)
    binary = shutil.which("ssh")
    if not binary:
        raise MachineError("the OpenSSH client (ssh) is not installed", hint="install openssh-client",
                           machine=record.name)
    argv = vmmode.ssh_argv(record, command=list(command), ssh=binary)
    os.execv(binary, argv)


@click.command("logs")
@machine_option
@click.option("--serial", "which", flag_value="serial", help="The VM's serial console (boot messages).")
@click.option("--engine", "which", flag_value="engine", help="The engine's log inside the VM.")
@click.option("--agent", "which", flag_value="agent", help="The tunnel agent's log on this host.")
@click.option("-n", "--tail", "lines", type=int, default=100, show_default=True, help="Lines to show.")
@click.pass_obj
def machine_logs(app, which, lines):
    """Show a machine's logs: --serial, --engine (default; native mode's too) or --agent."""
    from ..vm import vmmode

    if _selected(app).mode == "native" and which in (None, "engine"):
        app.out(vmmode.read_tail(_native(app).log_file, lines), nl=False)
        return
    record = _vm_record(app)
    if which == "serial":
        text = vmmode.read_tail(record.paths.serial_log, lines)
    elif which == "agent":
        text = vmmode.read_tail(record.paths.agent_log, lines)
    else:
        text = vmmode.engine_log(record.name, lines)
    app.out(text, nl=False)


@click.group("machine")
def machine_group():
    """Machines: where the engine runs (this host, a VM, a remote host)."""


for _cmd in (up, down, status, restart, destroy, upgrade, ls, ip, ssh, machine_logs):
    machine_group.add_command(_cmd)
