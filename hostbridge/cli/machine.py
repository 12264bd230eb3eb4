"""Machine commands: up, down, status, restart, destroy, upgrade, ls, ip, ssh, logs --serial/--engine.

Every machine, whatever its mode, is a ``machines.modes.Machine``: these commands call its ``up``,
``down``, ``status``, ``upgrade`` or ``destroy`` and say what happened (the words per mode are
below; what the modes do is in ``hostbridge.machines``).
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
    """The selected machine (a ``machines.modes.Machine``); a new one's mode comes from ``driver``/config/OS."""
    from ..machines import modes

    return modes.select(app.config["machine"], app.config, driver)


def _native(app):
    from ..machines.native import NativeEngine

    return NativeEngine.from_config(app.config)


class _Silent:
    """Progress under ``-q``: nothing shown."""

    def __call__(self, stage, text):
        pass

    def transfer(self, done, total=None):
        pass

    def close(self, ok=True):
        pass


def _progress(app):
    """`up`'s progress on stderr: an updating line on a terminal, plain lines otherwise."""
    import sys

    from .progress import StageProgress

    if app.verbosity < 0:
        return _Silent()

    def write(text):
        sys.stderr.write(text)
        sys.stderr.flush()

    return StageProgress(write, tty=sys.stderr.isatty())


def _with_progress(app, fn):
    """Run ``fn(progress)``, ending the progress line whatever happens."""
    progress = _progress(app)
    try:
        result = fn(progress)
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    return result


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
    from ..machines import modes

    machine = _selected(app, driver)
    options = modes.UpOptions(driver=driver, cpus=cpus, memory_mib=memory, disk=disk, shares=shares, timeout=timeout)
    result = _with_progress(app, lambda progress: machine.up(options, progress=progress))
    _UP_REPORTS[machine.mode](app, machine.name, result)
    if not (result.already_running or result.resumed):  # a resumed engine did not start: its notes were said
        _engine_notes(app, result.endpoint)
    _write_context(app, machine.name, result.endpoint)



def _report_native_up(app, name, result):
    st = result.details
    if result.already_running:
        app.out("The hostbridge engine is already running (pid %s)." % st["pid"])
    else:
        app.out("The hostbridge engine is running (pid %s)." % st["pid"])
    app.out("Socket: %s\nLog:    %s\n\nTo use the docker CLI with it:\n  export DOCKER_HOST=%s"
            % (st["socket"], st["log"], st["endpoint"]))
    _group_note(app, st["group"], st.get("group_created"))


def _report_vm_up(app, name, result):
    if result.already_running:
        app.out("Machine %s is already running." % name)
    else:
        app.out("Machine %s is running (%s, %s in %.1f s)." % (name, result.driver,
                                                             "resumed" if result.resumed else "up", result.seconds))
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


def _engine_notes(app, endpoint):
    """What the engine changed on its own as it started (a default bridge moved off a host route
    that overlapped it: a VPN), from ``/info``'s warnings."""
    from ..errors import HostbridgeError
    from ..tunnel import localhttp

    try:
        warnings = localhttp.get_json(endpoint, "/info", 10).get("Warnings") or []
    except HostbridgeError:
        return
    for text in warnings:
        if "default bridge network" in text:
            app.status("note: " + text.replace("WARNING: ", "", 1))


def _group_note(app, group, created):
    """Say how a non-root user gets to use the native engine (members of its socket's group)."""
    from ..machines.native import not_in_group

    user = os.environ.get("SUDO_USER")
    if created:
        app.out("\nCreated group %s: its members use the engine without sudo." % group)
    if not_in_group(group, user):
        app.out("To use it as %s: sudo usermod -aG %s %s, then log in again (or `newgrp %s`)."
                % (user, group, user, group))
    elif created:
        app.out("Add a user with: sudo usermod -aG %s USER, then log in again." % group)


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
@click.option("--shutdown", is_flag=True, help="Shut a VM down instead of suspending it (its containers stop).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for it to stop.")
@click.pass_obj
def down(app, force, shutdown, timeout):
    """Stop the selected machine (containers, images and volumes are kept). A QEMU or Vagrant VM is
    suspended: the next `up` resumes it with its containers running."""
    machine = _selected(app)
    res = machine.down(force=force, timeout=timeout, shutdown=shutdown)
    if res.get("note"):
        app.err("Note: %s." % res["note"])
    if res.get("suspended"):
        app.out("Suspended machine {name} ({mib:.0f} MiB saved); `hostbridge up` resumes it.".format(
            name=machine.name, mib=res.get("size", 0) / 2 ** 20))
        return
    stopped, idle = _DOWN_REPORTS[machine.mode]
    app.out((stopped if res["was_running"] else idle).format(name=machine.name, **res))


def format_option(fn):
    """``--format`` (a Go template subset, ``table …`` or ``json``) on a machine command."""
    return click.option("--format", "format_", metavar="TEMPLATE",
                        help="Format output with a Go template (as `docker ps`), 'table …', or 'json'.")(fn)


def emit(app, format_, rows, columns) -> bool:
    """Print ``rows`` with ``--format`` when one was given. Returns whether it printed.

    Args:
        format_: the template, ``json`` (``{{json .}}`` per row), or None (the caller prints).
        rows: one dict per line (fields as docker names them: ``Name``, ``State``…).
        columns: field → column title for ``table`` formats.
    Raises:
        TemplateError: an unknown field (docker's message) or a malformed template.
    """
    if not format_:
        return False
    from .template import render_rows

    app.out(render_rows("{{json .}}" if format_ == "json" else format_, rows, columns), nl=False)
    return True


STATUS_COLUMNS = {"Name": "MACHINE", "Mode": "MODE", "State": "STATE", "Endpoint": "ENDPOINT"}


@click.command()
@machine_option
@format_option
@click.pass_obj
def status(app, format_):
    """Show whether the selected machine and its engine run (exit 1 when the engine does not answer)."""
    st = _selected(app).status()
    if not emit(app, format_, [st["row"]], STATUS_COLUMNS):
        app.out("\n".join("%-10s%s" % (label + ":", value) for label, value in st["rows"]))
    if not st["ok"]:
        raise click.exceptions.Exit(1)


@click.command()
@machine_option
@click.option("--timeout", type=float, help="Seconds to wait for the VM's SSH.")
@click.pass_context
def restart(ctx, timeout):
    """Stop the selected machine, then start it again."""
    ctx.invoke(down, shutdown=True)  # a restart boots afresh: no suspend and resume
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
    res = machine.upgrade(note=lambda text: app.err("note: " + text))
    app.out("Machine %s: engine %s -> %s" % (machine.name, res["from"], res["to"]))


LS_COLUMNS = {"Name": "NAME", "Mode": "MODE", "Driver": "DRIVER", "State": "STATE", "Endpoint": "ENDPOINT"}


def _native_row(app):
    """The native machine's ``ls`` row on Linux when it has no record of its own, else None."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        st = _native(app).status()
    except HostbridgeError:
        return None
    state = "running" if st["responding"] else ("starting or stuck" if st["running"] else "stopped")
    return {"name": "default", "mode": "native", "driver": "native", "state": state, "endpoint": st["endpoint"]}


@click.command("ls")
@format_option
@click.option("-q", "--quiet", is_flag=True, help="Only machine names.")
@click.pass_obj
def ls(app, format_, quiet):
    """List machines (the native one included on Linux)."""
    from ..machines import vmmode

    rows = vmmode.list_machines()
    if not any(r["name"] == "default" for r in rows):
        native = _native_row(app)
        if native:
            rows.insert(0, native)
    if quiet:
        for r in rows:
            app.out(r["name"])
        return
    if emit(app, format_, [{k.capitalize(): v for k, v in r.items()} for r in rows], LS_COLUMNS):
        return
    app.out("%-16s %-8s %-8s %-24s %s" % ("NAME", "MODE", "DRIVER", "STATE", "ENDPOINT"))
    for r in rows:
        app.out("%-16s %-8s %-8s %-24s %s" % (r["name"], r["mode"], r["driver"], r["state"], r["endpoint"]))


def _vm_record(app):
    from ..machines import vmmode

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

    from ..machines import vmmode

    record = _vm_record(app)
    binary = shutil.which("ssh")
    if not binary:
        raise MachineError("the OpenSSH client (ssh) is not installed", hint="install openssh-client",
                           machine=record.name)
    argv = vmmode.ssh_argv(record, command=list(command), ssh=binary)
    os.execv(binary, argv)


@click.command("ssh-config")
@machine_option
@click.argument("name", required=False)
@click.pass_obj
def ssh_config(app, name):
    """Print an OpenSSH config block for machine NAME (for `ssh -F FILE NAME`, scp, IDEs)."""
    from ..machines import record as records
    from ..tunnel.sshconfig import render_block

    name = name or app.config["machine"]
    record = records.load(name)
    if record is None:
        raise MachineError("no machine named %r" % name, hint="see `hostbridge ls`", machine=name)
    target = record.fields.get("ssh")
    if record.mode == "native" or not target:
        raise MachineError("machine %s has no SSH address%s" % (
            name, " (a native machine is this host)" if record.mode == "native" else " yet"),
            hint="start it with `hostbridge up`" if record.mode != "native" else None, machine=name)
    app.out(render_block(name, target, record.paths.known_hosts), nl=False)


@click.command("logs")
@machine_option
@click.option("--serial", "which", flag_value="serial", help="The VM's serial console (boot messages).")
@click.option("--engine", "which", flag_value="engine", help="The engine's log inside the VM.")
@click.option("--agent", "which", flag_value="agent", help="The tunnel agent's log on this host.")
@click.option("-n", "--tail", "lines", type=int, default=100, show_default=True, help="Lines to show.")
@click.pass_obj
def machine_logs(app, which, lines):
    """Show a machine's logs: --serial, --engine (default; native mode's too) or --agent."""
    from ..machines import vmmode

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
