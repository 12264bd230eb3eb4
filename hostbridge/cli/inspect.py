"""``inspect`` (and ``container/image/network/volume inspect``): docker-shaped JSON, or a ``-f`` template per object."""

from __future__ import annotations

import click

from ..errors import HostbridgeError, NotFound

TYPES = ("container", "image")


def _find(client, name, size=False):
    """A container, else an image, named ``name``; docker's "No such object" when neither exists."""
    for kind in TYPES:
        try:
            return _fetcher(client, kind, size)(name)
        except NotFound:
            continue
    raise HostbridgeError("No such object: %s" % name)


def _fetcher(client, kind, size=False):
    if kind == "container":
        return lambda name: client.inspect_container(name, size=size)
    return client.inspect_image


def inspect_each(app, names, fetch, format_):
    """Print ``fetch(name)`` for each name as docker's ``inspect`` does: JSON list or a template per object.

    Missing objects are reported after the output, and the exit status is then 1.
    """
    from .format import indent_json
    from .template import Template

    found, errors = [], []
    for name in names:
        try:
            found.append(fetch(name))
        except HostbridgeError as e:
            errors.append(e)
    if format_:
        tpl = Template(format_)
        for obj in found:
            app.out(tpl.render(obj))
    else:
        app.out(indent_json(found))
    for e in errors:
        app.report(e)
    if errors:
        raise click.exceptions.Exit(1)


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.State.Status}}).")
@click.option("--type", "type_", type=click.Choice(TYPES), help="Only inspect objects of this type.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(app, format_, type_, size, names):
    """Return low-level information on containers or images."""
    if type_:  # one kind: the daemon's own "No such …" errors, as docker reports them
        fetch = _fetcher(app.client, type_, size)
    else:
        fetch = lambda name: _find(app.client, name, size)  # noqa: E731
    inspect_each(app, names, fetch, format_)


@click.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.State.Status}}).")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def container_inspect(app, format_, size, names):
    """Display detailed information on one or more containers."""
    inspect_each(app, names, _fetcher(app.client, "container", size), format_)


@click.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.Config.Cmd}}).")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def image_inspect(app, format_, names):
    """Display detailed information on one or more images."""
    inspect_each(app, names, _fetcher(app.client, "image"), format_)
