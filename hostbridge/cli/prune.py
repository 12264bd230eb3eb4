"""``container prune``, ``image prune``, ``network prune``, ``volume prune`` and ``system prune``.

Each asks docker's question unless ``-f``, then prints docker's report: a section per kind of
object deleted and the total space reclaimed.
"""

from __future__ import annotations

import click

from . import format as fmt
from .options import parse_filters


def _force_and_filter(f):
    f = click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")(f)
    return click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")(f)


def _section(app, title, items):
    if items:
        app.out(title)
        for item in items:
            app.out(item)
        app.out("")


def _image_lines(report):
    lines = []
    for entry in report.get("ImagesDeleted") or ():
        if entry.get("Untagged"):
            lines.append("untagged: %s" % entry["Untagged"])
        if entry.get("Deleted"):
            lines.append("deleted: %s" % entry["Deleted"])
    return lines


def _total(app, space):
    app.out("Total reclaimed space: %s" % fmt.human_size(space or 0, 4))


def prune_containers(app, filters):
    """Prune stopped containers, print the section; returns the space reclaimed."""
    report = app.client.prune_containers(filters)
    _section(app, "Deleted Containers:", report.get("ContainersDeleted"))
    return report.get("SpaceReclaimed") or 0


def prune_images(app, filters, all_):
    """Prune dangling (``all_``: all unused) images, print the section; returns the space reclaimed."""
    report = app.client.prune_images(dict(filters, dangling=["false" if all_ else "true"]))
    _section(app, "Deleted Images:", _image_lines(report))
    return report.get("SpaceReclaimed") or 0


def prune_networks(app, filters):
    """Prune unused networks, print the section."""
    _section(app, "Deleted Networks:", app.client.prune_networks(filters).get("NetworksDeleted"))


def prune_volumes(app, filters, all_):
    """Prune unused anonymous (``all_``: all) volumes, print the section; returns the space reclaimed."""
    report = app.client.prune_volumes(dict(filters, all=["true"]) if all_ else filters)
    _section(app, "Deleted Volumes:", report.get("VolumesDeleted"))
    return report.get("SpaceReclaimed") or 0


@click.command("prune")
@_force_and_filter
@click.pass_obj
def container_prune(app, force, filters):
    """Remove all stopped containers."""
    if app.confirm("WARNING! This will remove all stopped containers.", force):
        _total(app, prune_containers(app, parse_filters(filters)))


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@_force_and_filter
@click.pass_obj
def image_prune(app, all_, force, filters):
    """Remove unused images."""
    warning = "WARNING! This will remove all %s." % (
        "images without at least one container associated to them" if all_ else "dangling images")
    if app.confirm(warning, force):
        _total(app, prune_images(app, parse_filters(filters), all_))


@click.command("prune")
@_force_and_filter
@click.pass_obj
def network_prune(app, force, filters):
    """Remove all unused networks."""
    if app.confirm("WARNING! This will remove all custom networks not used by at least one container.", force):
        prune_networks(app, parse_filters(filters))


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused local volumes, not just anonymous ones.")
@_force_and_filter
@click.pass_obj
def volume_prune(app, all_, force, filters):
    """Remove unused local volumes."""
    warning = "WARNING! This will remove %s local volumes not used by at least one container." % (
        "all" if all_ else "anonymous")
    if app.confirm(warning, force):
        _total(app, prune_volumes(app, parse_filters(filters), all_))


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@_force_and_filter
@click.pass_obj
def system_prune(app, all_, volumes, force, filters):
    """Remove unused data: stopped containers, unused networks, dangling (-a: unused) images.

    The builder's cache is left alone (prune it with the builder's own command).
    """
    parsed = parse_filters(filters)
    if volumes and "until" in parsed:
        app.abort('ERROR: The "until" filter is not supported with "--volumes"')
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_ else "all dangling images")
    if not app.confirm("WARNING! This will remove:\n" + "".join("  - %s\n" % i for i in items), force):
        return
    space = prune_containers(app, parsed)
    prune_networks(app, parsed)
    if volumes:
        space += prune_volumes(app, parsed, False)
    space += prune_images(app, parsed, all_)
    _total(app, space)
