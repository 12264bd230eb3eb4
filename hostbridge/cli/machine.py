"""``up``, ``down`` and ``status``: start, stop and show the selected machine's engine.

Native mode is handled here; VM and remote machines are sequenced by their own modules.
"""

from __future__ import annotations

import click

from ..errors import MachineError


def _native(app):
    """The ``NativeEngine`` for the selected machine, or an error naming the unsupported mode."""
    from ..vm import machine as machines
    from ..vm.native import NativeEngine

    name = app.config["machine"]
    record = machines.load(name)
    if record is not None and record.mode != "native":
        raise MachineError("machine %r runs in %s mode, which this command does not handle yet" % (name, record.mode),
                           hint="use the native machine (default) on Linux", machine=name)
    if record is None and name != "default":
        raise MachineError("no machine named %r" % name, hint="the native machine is called 'default'",
                           machine=name)
    return NativeEngine.from_config(app.config)


@click.command()
@click.option("--timeout", type=float, help="Seconds to wait for the engine to answer.")
@click.pass_obj
def up(app, timeout):
    """Start the engine (natively on Linux; needs root)."""
    engine = _native(app)
    app.status("Starting the hostbridge engine…")
    st = engine.start(timeout=timeout or app.config["native.start_timeout"])
    if st["already_running"]:
        app.out("The hostbridge engine is already running (pid %s)." % st["pid"])
    else:
        app.out("The hostbridge engine is running (pid %s)." % st["pid"])
    app.out("Socket: %s\nLog:    %s\n\nTo use the docker CLI with it:\n  export DOCKER_HOST=%s"
            % (st["socket"], st["log"], st["endpoint"]))


@click.command()
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for it to stop.")
@click.pass_obj
def down(app, timeout):
    """Stop the engine (containers and their state are kept)."""
    engine = _native(app)
    pid = engine.stop(timeout=timeout)
    if pid is None:
        app.out("The hostbridge engine is not running.")
    else:
        app.out("Stopped the hostbridge engine (pid %d)." % pid)


@click.command()
@click.pass_obj
def status(app):
    """Show whether the engine runs, and where its socket is (exit 1 when it does not answer)."""
    engine = _native(app)
    st = engine.status()
    state = "running" if st["responding"] else ("starting or stuck" if st["running"] else "stopped")
    app.out("machine:  %s (native)\nstate:    %s\npid:      %s\nsocket:   %s\nlog:      %s"
            % (app.config["machine"], state, st["pid"] or "-", st["socket"], st["log"]))
    if not st["responding"]:
        raise click.exceptions.Exit(1)
