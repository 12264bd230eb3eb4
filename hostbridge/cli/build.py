"""``hostbridge build``: the classic builder, as ``DOCKER_BUILDKIT=0 docker build``."""

from __future__ import annotations

import os
import sys

import click


def _kv_map(items, from_env):
    """``K=V`` strings → a dict. A bare ``K`` takes ``$K`` when ``from_env`` (docker's --build-arg;
    unset → None, "declared without a value"), else "" (docker's --label)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter("invalid argument %r: expected KEY=VALUE" % item)
        out[key] = value if sep else (os.environ.get(key) if from_env else "")
    return out


def _stdin_bytes(what):
    if sys.stdin.isatty():
        raise click.UsageError("%s from stdin was requested, but stdin is a terminal" % what)
    return sys.stdin.buffer.read()


def prepare_context(path, dockerfile):
    """The upload and the ``dockerfile`` query value for ``build PATH [-f FILE]``.

    Returns:
        ``(body, dockerfile_param)``: bytes or an iterator of tar chunks.
    Raises:
        ContextError: the context or the Dockerfile cannot be read.
        click.UsageError: both the context and the Dockerfile asked for stdin.
    """
    from ..client.buildcontext import resolve_dockerfile, tar_context

    if path == "-":
        if dockerfile == "-":
            raise click.UsageError("invalid argument: can't use stdin for both build context and dockerfile")
        # a tar or a bare Dockerfile on stdin: the engine tells them apart
        return _stdin_bytes("the build context"), dockerfile or None
    name, outside = resolve_dockerfile(path, dockerfile)
    extra = None
    if outside == "-":
        extra = _stdin_bytes("the Dockerfile")
    elif outside:
        with open(outside, "rb") as f:
            extra = f.read()
    return tar_context(path, name, extra)


def show_stream(app, messages, quiet):
    """Print the build's JSON stream as docker does; return the image id (``aux.ID``).

    Raises:
        Abort: the stream carried an error (the message, exiting with its ``errorDetail.code``).
    """
    image_id, held = None, []
    for msg in messages:
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            if quiet:
                app.write_bytes("".join(held).encode(), stream=2)
            app.abort(msg.get("error") or detail.get("message") or "the build failed",
                      detail.get("code") or 1)
        aux = msg.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
        text = msg.get("stream")
        if text is None and msg.get("status"):
            text = "%s%s\n" % (msg["id"] + ": " if msg.get("id") else "", msg["status"])
        if text is None:
            continue
        if quiet:
            held.append(text)
        else:
            app.write_bytes(text.encode())
    if quiet:
        app.write_bytes("".join(held).encode())
    return image_id


def _registry_config():
    from .. import credentials

    return credentials.build_config_header()


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag).")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: PATH/Dockerfile; - for stdin).")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables (KEY=VALUE).")
@click.option("--target", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image (KEY=VALUE).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID to the file.")
@click.argument("path")
@click.pass_obj
def build(app, tags, dockerfile, build_args, target, no_cache, pull, labels, quiet, iidfile, path):
    """Build an image from a Dockerfile (PATH is the context directory, or - for stdin)."""
    body, dockerfile_param = prepare_context(path, dockerfile)
    messages = app.client.build(body, tags=tags, dockerfile=dockerfile_param,
                                build_args=_kv_map(build_args, True), target=target, no_cache=no_cache,
                                pull=pull, labels=_kv_map(labels, False), quiet=quiet,
                                registry_config=_registry_config())
    image_id = show_stream(app, messages, quiet)
    if iidfile and image_id:
        with open(iidfile, "w") as f:
            f.write(image_id)
