"""``inspect``: docker-shaped JSON of containers and images, or a ``-f`` template per object."""

from __future__ import annotations

import click

from ..errors import NotFound

TYPES = ("container", "image")


def _find(client, name, type_, size=False):
    kinds = [type_] if type_ else list(TYPES)
    for kind in kinds:
        try:
            if kind == "container":
                return client.inspect_container(name, size=size)
            return client.inspect_image(name)
        except NotFound:
            continue
    return None


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a Go template subset ({{.State.Status}}).")
@click.option("--type", "type_", type=click.Choice(TYPES), help="Only inspect objects of this type.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(app, format_, type_, size, names):
    """Return low-level information on containers or images."""
    from .format import indent_json
    from .template import Template

    found, missing = [], []
    for name in names:
        obj = _find(app.client, name, type_, size)
        if obj is None:
            missing.append(name)
        else:
            found.append(obj)
    if format_:
        tpl = Template(format_)
        for obj in found:
            app.out(tpl.render(obj))
    else:
        app.out(indent_json(found))
    for name in missing:
        app.err("Error: No such %s: %s" % (type_ or "object", name))
    if missing:
        raise click.exceptions.Exit(1)
