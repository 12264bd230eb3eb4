"""Image commands: images, rmi, tag, save, load, import, history."""

from __future__ import annotations

import sys
import time

import click

from ..errors import APIError
from . import format as fmt
from . import listing
from .listing import split_reference
from .spec import to_click

HISTORY_COLUMNS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}


images = to_click("images", listing.IMAGES, listing.images)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.argument("images", nargs=-1, required=True)
@click.pass_obj
def rmi(app, force, no_prune, images):
    """Remove one or more images."""
    def remove(name):
        items = app.client.remove_image(name, force=force, noprune=no_prune) or ()
        return ["%s: %s" % (key, item[key]) for item in items for key in ("Untagged", "Deleted") if key in item]

    app.for_each(images, remove)


@click.command()
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag(app, source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    repo, tag_ = split_reference(target)
    app.client.tag(source, repo, tag_ or "latest")


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.argument("images", nargs=-1, required=True)
@click.pass_obj
def save(app, output, images):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    app.write_stream(app.client.get_images(images), output)


def _print_progress(app, messages):
    """Print a JSON progress stream's messages; an ``error`` message raises. Returns the last."""
    last = None
    for msg in messages:
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise APIError(msg.get("error") or detail.get("message", "failed"))
        if "stream" in msg:
            app.out(msg["stream"], nl=False)
        last = msg
    return last


def _input(path):
    if path is None or path == "-":
        if sys.stdin.isatty():
            return None
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise click.BadParameter("cannot open %s: %s" % (path, e.strerror or e))


@click.command()
@click.option("-i", "--input", "input_", type=click.Path(dir_okay=False),
              help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_obj
def load(app, input_, quiet):
    """Load an image from a tar archive or STDIN."""
    src = _input(input_)
    if src is None:
        app.abort("Error: requested load from stdin, but stdin is empty")
    with src:
        _print_progress(app, app.client.load_image(src, quiet=quiet))


@click.command("import")
@click.option("-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", help="Set commit message for imported image.")
@click.argument("file")
@click.argument("reference", required=False)
@click.pass_obj
def import_(app, change, message, file, reference):
    """Import the contents from a tarball (a file, or - for STDIN) to create a filesystem image."""
    if "://" in file:
        app.abort("Error: importing from a URL is not supported yet: download the tar and import the file")
    src = _input(file)
    if src is None:
        app.abort("Error: requested import from stdin, but stdin is a terminal")
    repo, tag_ = split_reference(reference) if reference else (None, None)
    with src:
        last = _print_progress(app, app.client.import_image(src, repo, tag_ or None, list(change), message))
    if last and last.get("status"):
        app.out(last["status"])


def history_row(h, trunc=True, human=True, now=None):
    """One ``history`` row as docker's HistoryContext fields."""
    ident = h.get("Id") or "<missing>"
    created_by = (h.get("CreatedBy") or "").replace("\t", " ")
    created = h.get("Created", 0)
    return {
        "ID": ident if ident == "<missing>" or not trunc else fmt.short_id(ident),
        "CreatedSince": fmt.since(created, now),
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)) + _tz_suffix(created),
        "CreatedBy": fmt.ellipsis(created_by, 45) if trunc else created_by,
        "Size": fmt.human_size(h.get("Size", 0)) if human else str(h.get("Size", 0)),
        "Comment": h.get("Comment", ""),
    }


def _tz_suffix(ts):
    # RFC 3339's zone: "Z" for UTC, else +hh:mm.
    off = time.strftime("%z", time.localtime(ts))
    return "Z" if off in ("+0000", "-0000") else off[:3] + ":" + off[3:]


@click.command()
@click.option("-H", "--human", type=click.BOOL, is_flag=False, flag_value=True, default=True,
              help="Print sizes and dates in human readable format (--human=false for raw).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "format_", help="Format output using a Go template subset.")
@click.argument("image")
@click.pass_obj
def history(app, human, no_trunc, quiet, format_, image):
    """Show the history of an image."""
    from .template import render_rows

    items = app.client.history(image)
    if quiet:
        for h in items:
            ident = h.get("Id") or "<missing>"
            app.out(ident if no_trunc or ident == "<missing>" else fmt.short_id(ident))
        return
    template = format_ or "table {{.ID}}\t{{.%s}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}" % (
        "CreatedSince" if human else "CreatedAt")
    now = time.time()
    app.out(render_rows(template, [history_row(h, not no_trunc, human, now) for h in items], HISTORY_COLUMNS),
            nl=False)
