"""``volume ls/create/inspect/rm`` (``volume prune`` is in prune.py)."""

from __future__ import annotations

import click

from .inspect import inspect_each
from .networks import natural_key
from .options import parse_filters, parse_labels

VOLUME_FORMAT = "table {{.Driver}}\t{{.Name}}"
VOLUME_COLUMNS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
                  "Availability": "AVAILABILITY", "Status": "STATUS"}


def volume_row(v):
    """One ``volume ls`` row (docker's volumeContext fields)."""
    from . import format as fmt

    usage = v.get("UsageData")
    labels = v.get("Labels") or {}
    return {"Name": v.get("Name", ""), "Driver": v.get("Driver", ""), "Scope": v.get("Scope", ""),
            "Mountpoint": v.get("Mountpoint", ""),
            "Labels": ",".join("%s=%s" % (k, val) for k, val in sorted(labels.items())),
            "Links": "N/A" if not usage else str(usage.get("RefCount", 0)),
            "Size": "N/A" if not usage or usage.get("Size", -1) == -1 else fmt.human_size(usage["Size"], 4),
            "Group": "N/A", "Availability": "N/A", "Status": "N/A"}


@click.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true').")
@click.option("--format", "format_", help="Format output using a Go template subset, or 'table …', or 'json'.")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.pass_obj
def volume_ls(app, filters, format_, quiet):
    """List volumes."""
    from .template import render_rows

    reply = app.client.volumes(parse_filters(filters))
    items = sorted(reply.get("Volumes") or [], key=lambda v: natural_key(v.get("Name", "")))
    if quiet:
        for v in items:
            app.out(v.get("Name", ""))
        return
    template = "{{json .}}" if format_ == "json" else format_ or VOLUME_FORMAT
    app.out(render_rows(template, [volume_row(v) for v in items], VOLUME_COLUMNS), nl=False)


@click.command("create")
@click.option("-d", "--driver", default="local", help="Specify volume driver name.")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options (key=value).")
@click.option("--label", multiple=True, help="Set metadata for a volume (key=value).")
@click.option("--name", "name_opt", hidden=True, help="Specify volume name.")
@click.argument("name", required=False)
@click.pass_obj
def volume_create(app, driver, opt, label, name_opt, name):
    """Create a volume (prints its name)."""
    if name and name_opt and name != name_opt:
        app.abort("Error: conflicting options: either specify --name or provide positional arg, not both")
    vol = app.client.create_volume(name or name_opt, driver, parse_labels(opt), parse_labels(label))
    app.out(vol["Name"])


@click.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a Go template subset.")
@click.argument("volumes", nargs=-1, required=True)
@click.pass_obj
def volume_inspect(app, format_, volumes):
    """Display detailed information on one or more volumes."""
    inspect_each(app, volumes, app.client.inspect_volume, format_)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("volumes", nargs=-1, required=True)
@click.pass_obj
def volume_rm(app, force, volumes):
    """Remove one or more volumes."""
    app.for_each(volumes, lambda v: app.client.remove_volume(v, force=force))
