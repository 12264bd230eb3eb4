"""Container commands other than run/create/start: ps, logs, stop, kill, rm, restart, wait, rename."""

from __future__ import annotations

import time

import click

from . import format as fmt
from .options import parse_filters, parse_timestamp

PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_COLUMNS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}


def _go_time(ts):
    # Go's time.Time.String() for a UNIX time, in local time: "2026-11-28 06:35:01 +0000 UTC".
    t = time.localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + time.strftime("%Z", t)


def _image(c, trunc):
    image = c.get("Image") or ""
    if not image:
        return "<no image>"
    if trunc:
        if fmt.short_id(c.get("ImageID")) == fmt.short_id(image):
            return fmt.short_id(image)
        return image.split("@", 1)[0]
    return image


def ps_row(c, trunc=True, now=None):
    """One ``ps`` row as docker's ContainerContext fields (strings), for tables and ``{{json .}}``."""
    names = [n.lstrip("/") for n in c.get("Names") or ()]
    if trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = fmt.human_size(c.get("SizeRw") or 0)
        if c.get("SizeRootFs"):
            size = "%s (virtual %s)" % (size, fmt.human_size(c["SizeRootFs"]))
    labels = c.get("Labels") or {}
    nets = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or ()]
    return {
        "ID": fmt.short_id(c.get("Id")) if trunc else c.get("Id", ""),
        "Image": _image(c, trunc),
        "Command": fmt.command(c.get("Command"), trunc),
        "CreatedAt": _go_time(c.get("Created", 0)),
        "RunningFor": fmt.since(c.get("Created"), now),
        "Ports": fmt.ports(c.get("Ports")),
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join("%s=%s" % (k, v) for k, v in sorted(labels.items())),
        "Mounts": ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": ",".join(nets),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or () if m.get("Driver") == "local")),
        "Platform": c.get("ImageManifestDescriptor", {}).get("platform") if c.get("ImageManifestDescriptor") else None,
    }


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions (name=value).")
@click.option("--format", "format_", help="Format output using a Go template subset, or 'table …', or 'json'.")
@click.pass_obj
def ps(app, all_, quiet, size, last, latest, no_trunc, filters, format_):
    """List containers."""
    from .template import render_rows, wants_field

    limit = 1 if latest else last
    template = format_ or (PS_FORMAT + ("\t{{.Size}}" if size else ""))
    if template == "json":
        template = "{{json .}}"
    size = size or (not quiet and wants_field(template, "Size"))
    items = app.client.containers(all=all_, limit=limit, size=size, filters=parse_filters(filters))
    if quiet:
        for c in items:
            app.out(c["Id"] if no_trunc else fmt.short_id(c["Id"]))
        return
    now = time.time()
    app.out(render_rows(template, [ps_row(c, not no_trunc, now) for c in items], PS_COLUMNS), nl=False)


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
