"""``use NAME``: make a machine the one every command talks to (docker-machine's ``use``)."""

from __future__ import annotations

import click


@click.command("use")
@click.argument("name")
@click.pass_obj
def use(app, name):
    """Make machine NAME the default for hostbridge commands (as --machine NAME would)."""
    from .. import config as cfg
    from ..errors import MachineError
    from ..machines import record as machine

    known = machine.list_names()
    if name not in known and name != cfg.SETTINGS["machine"].default:
        raise MachineError("no machine named %r" % name,
                           hint="known: %s; create one with `hostbridge up --machine %s` or `hostbridge remote add`"
                           % (", ".join(known) or "none", name))
    cfg.set_value("machine", name)
    app.status("Using machine %s (HOSTBRIDGE_MACHINE or --machine still override it)" % name)
