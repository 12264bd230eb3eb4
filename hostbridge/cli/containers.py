"""Container commands other than run/create/start: ps, logs, stop, kill, rm, restart, wait, rename."""

from __future__ import annotations

import click

from . import format as fmt
from . import listing
from .options import parse_timestamp
from .spec import to_click

ps = to_click("ps", listing.PS, listing.ps)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Show logs since a timestamp or a relative duration (e.g. 42m).")
@click.option("--until", help="Show logs before a timestamp or a relative duration (e.g. 42m).")
@click.argument("container")
@click.pass_obj
def logs(app, follow, tail, timestamps, since, until, container):
    """Fetch the logs of a container."""
    info = app.client.inspect_container(container)
    tty = bool(info.get("Config", {}).get("Tty"))
    for stream_no, data in app.client.logs(info["Id"], follow=follow, tail=tail, timestamps=timestamps,
                                           since=parse_timestamp(since), until=parse_timestamp(until), tty=tty):
        app.write_bytes(data, 2 if stream_no == 2 else 1)


@click.command()
@click.option("-s", "--signal", help="Signal to send to the container.")
@click.option("-t", "--timeout", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(app, signal, timeout, containers):
    """Stop one or more running containers."""
    app.for_each(containers, lambda c: app.client.stop(c, timeout=timeout, signal=signal))


@click.command()
@click.option("-s", "--signal", help="Signal to send to the container (default KILL).")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill(app, signal, containers):
    """Kill one or more running containers."""
    app.for_each(containers, lambda c: app.client.kill(c, signal=signal))


@click.command()
@click.option("-s", "--signal", help="Signal to send to the container.")
@click.option("-t", "--timeout", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart(app, signal, timeout, containers):
    """Restart one or more containers."""
    app.for_each(containers, lambda c: app.client.restart(c, timeout=timeout, signal=signal))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm(app, force, volumes, containers):
    """Remove one or more containers."""
    app.for_each(containers, lambda c: app.client.remove_container(c, force=force, v=volumes))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait(app, containers):
    """Block until one or more containers stop, then print their exit codes."""
    app.for_each(containers, lambda c: str(app.client.wait(c)["StatusCode"]))


@click.command()
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename(app, container, new_name):
    """Rename a container."""
    app.client.rename(container, new_name)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause(app, containers):
    """Pause all processes within one or more containers."""
    app.for_each(containers, app.client.pause)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause(app, containers):
    """Unpause all processes within one or more containers."""
    app.for_each(containers, app.client.unpause)


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(app, container, ps_options):
    """Display the running processes of a container."""
    result = app.client.top(container, " ".join(ps_options) or None)
    rows = [result.get("Titles") or []] + [list(p) for p in result.get("Processes") or ()]
    app.out(fmt.table(rows, minwidth=20, padding=3), nl=False)
