"""``exec``: run a command in a running container, streaming its output, exiting with its code."""

from __future__ import annotations

import time

import click

from . import options as opt
from .run import COMMAND_SETTINGS, start_error_status


@click.command("exec", context_settings=COMMAND_SETTINGS)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, type=click.Path(dir_okay=False),
              help="Read in a file of environment variables.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(app, detach, interactive, tty, env, env_file, workdir, user, privileged, container, command):
    """Execute a command in a running container."""
    from ..errors import APIError
    from .attach import SignalProxy, Terminal, quietly, stream

    client = app.client
    envs = [line for path in env_file for line in opt.parse_env_file(path)] + opt.parse_env(env)
    exec_id = client.exec_create(container, command, stdin=interactive and not detach, tty=tty, env=envs,
                                 workdir=workdir, user=user, privileged=privileged)
    if detach:
        client.exec_start_detached(exec_id, tty=tty)
        return
    try:
        sock = client.exec_start_socket(exec_id, tty=tty)
    except APIError as e:
        e.exit_code = start_error_status(str(e))
        raise

    def resize():
        size = Terminal.size()
        if size:
            client.exec_resize(exec_id, *size)

    # docker exec forwards no signals to the process; it only follows window resizes.
    with Terminal(tty and interactive), SignalProxy(None, resize=resize if tty else None, forward=False):
        if tty:
            quietly(resize)
        stream(app, sock, tty, interactive)
    # The stream ends when the process does; its exit code may land a moment later.
    deadline = time.monotonic() + 10
    info = client.exec_inspect(exec_id)
    while info.get("Running") and time.monotonic() < deadline:
        time.sleep(0.05)
        info = client.exec_inspect(exec_id)
    code = info.get("ExitCode")
    click.get_current_context().exit(code if isinstance(code, int) else 1)
