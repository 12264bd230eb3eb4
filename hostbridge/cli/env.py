"""`hostbridge env`: DOCKER_HOST for the stock docker CLI, in the syntax of the user's shell.

``env_script`` and ``detect_shell`` are pure (tested per shell); the click command only
finds the machine's endpoint and prints. Register with ``root.add_command(env_command)``.
"""

from __future__ import annotations

import ntpath
import os
import sys

import click

SHELLS = ("bash", "zsh", "fish", "powershell", "cmd")


def detect_shell(environ=None, platform: str | None = None, parent: str | None = None) -> str:
    """Guess the user's shell.

    Args:
        environ: the environment (default os.environ); ``SHELL`` decides on POSIX.
        platform: sys.platform (default the current one).
        parent: the parent process's executable name, if known (decides on Windows).
    Returns:
        One of SHELLS (bash when nothing says otherwise; powershell on Windows).
    """
    environ = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform.startswith("win"):
        name = ntpath.basename((parent or "").lower())
        return "cmd" if name in ("cmd", "cmd.exe") else "powershell"
    name = os.path.basename(environ.get("SHELL", "") or parent or "")
    for shell in ("fish", "zsh", "bash"):
        if name == shell or name.startswith(shell):
            return shell
    if name in ("pwsh", "powershell"):
        return "powershell"
    return "bash"


def _quote(shell: str, value: str) -> str:
    if shell in ("bash", "zsh"):
        return "'" + value.replace("'", "'\"'\"'") + "'"
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell == "powershell":
        return "'" + value.replace("'", "''") + "'"
    return value  # cmd: SET takes the rest of the line literally


def eval_hint(shell: str, command: str = "hostbridge env") -> str:
    """The comment line telling how to apply the output in ``shell``."""
    line = apply_line(shell, "%s --shell %s" % (command, shell))
    if shell == "cmd":
        return "REM Run this command to configure your shell:\nREM " + line
    return "# Run this command to configure your shell:\n# " + line


def apply_line(shell: str, command: str = "hostbridge env") -> str:
    """The line that runs ``command`` (an env command) and applies its output in ``shell`` (pure).

    Args:
        shell: one of SHELLS (``detect_shell``: PowerShell on Windows, else from $SHELL).
        command: e.g. ``hostbridge env dev``.
    """
    if shell == "fish":
        return "%s | source" % command
    if shell == "powershell":
        return "& %s | Invoke-Expression" % command
    if shell == "cmd":
        return "@FOR /f \"tokens=*\" %%i IN ('%s') DO @%%i" % command
    return 'eval "$(%s)"' % command


def env_script(shell: str, variables: dict, unset: bool = False, command: str = "hostbridge env") -> str:
    """Lines setting (or with ``unset``, removing) ``variables`` in ``shell``, then the hint.

    Args:
        shell: one of SHELLS.
        variables: name → value, e.g. {"DOCKER_HOST": "unix:///…/docker.sock"}.
        unset: emit removal lines instead (values ignored).
        command: how the user invoked env (for the hint line).
    Returns:
        The text to print (ends with a newline).
    Raises:
        ValueError: unknown shell.
    """
    if shell not in SHELLS:
        raise ValueError("unknown shell %r: use one of %s" % (shell, ", ".join(SHELLS)))
    lines = []
    for name, value in variables.items():
        if shell in ("bash", "zsh"):
            lines.append("unset %s" % name if unset else "export %s=%s" % (name, _quote(shell, value)))
        elif shell == "fish":
            lines.append("set -e %s;" % name if unset else "set -gx %s %s;" % (name, _quote(shell, value)))
        elif shell == "powershell":
            lines.append("Remove-Item Env:\\%s -ErrorAction SilentlyContinue" % name if unset
                         else "$Env:%s = %s" % (name, _quote(shell, value)))
        else:
            lines.append("SET %s=" % name if unset else "SET %s=%s" % (name, value))
    hint_cmd = command + (" -u" if unset else "")
    return "\n".join(lines + [eval_hint(shell, hint_cmd)]) + "\n"


def machine_endpoint(machine: str | None, config=None) -> str:
    """The DOCKER_HOST value for a machine: its endpoint as ``client.endpoint`` chooses it.

    Args:
        machine: the machine's name (None: the configured one; an explicit name ignores ``host``).
        config: a loaded ``Config`` to use when ``machine`` is None.
    Raises:
        HostbridgeError: no such machine, or it is not running.
    """
    from .. import config as configuration
    from ..client.endpoint import resolve_endpoint

    if machine:
        config = configuration.load({"machine": machine, "host": ""})
    return resolve_endpoint(config or configuration.load()).url


@click.command("env")
@click.option("--shell", type=click.Choice(SHELLS), help="Output syntax (default: detected).")
@click.option("-u", "--unset", is_flag=True, help="Print lines that unset the variables instead.")
@click.argument("machine", required=False)
@click.pass_context
def env_command(ctx, shell, unset, machine):
    """Print DOCKER_HOST for MACHINE so the stock docker CLI uses it: eval "$(hostbridge env)"."""
    from ..errors import HostbridgeError

    shell = shell or detect_shell()
    app = ctx.obj
    try:
        value = "" if unset else machine_endpoint(machine, app.config if app is not None else None)
    except HostbridgeError as e:
        raise click.ClickException(str(e)) from None
    click.echo(env_script(shell, {"DOCKER_HOST": value}, unset=unset), nl=False)
