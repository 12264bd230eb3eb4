"""The ``hostbridge`` command: the root group, lazy sub-commands, and error reporting."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import HostbridgeError
from .app import App

# name → (module, attribute). Modules load only when their command runs or help lists it, so
# `hostbridge version --help` never imports requests.
COMMANDS = {
    "run": ("run", "run"),
    "create": ("run", "create"),
    "start": ("run", "start"),
    "ps": ("containers", "ps"),
    "logs": ("containers", "logs"),
    "exec": ("execs", "exec_"),
    "stop": ("containers", "stop"),
    "kill": ("containers", "kill"),
    "rm": ("containers", "rm"),
    "restart": ("containers", "restart"),
    "wait": ("containers", "wait"),
    "rename": ("containers", "rename"),
    "pause": ("containers", "pause"),
    "unpause": ("containers", "unpause"),
    "top": ("containers", "top"),
    "inspect": ("inspect", "inspect"),
    "images": ("images", "images"),
    "rmi": ("images", "rmi"),
    "tag": ("images", "tag"),
    "save": ("images", "save"),
    "load": ("images", "load"),
    "import": ("images", "import_"),
    "history": ("images", "history"),
    "build": ("build", "build"),
    "version": ("system", "version"),
    "info": ("system", "info"),
    "config": ("config_cmd", "config"),
    "up": ("machine", "up"),
    "down": ("machine", "down"),
    "status": ("machine", "status"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module("hostbridge.cli." + module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Less output.")
@click.option("-H", "--host", metavar="URL", help="Engine endpoint (unix:///path or tcp://127.0.0.1:PORT).")
@click.option("-m", "--machine", metavar="NAME", help="The machine to talk to (default: HOSTBRIDGE_MACHINE or config).")
@click.version_option(__version__, message="hostbridge %(version)s")
@click.pass_obj
def cli(app, verbose, quiet, host, machine):
    """Run docker containers natively on Linux, in a small VM, or on a remote host over SSH."""
    app.verbosity = -1 if quiet else verbose
    app.flags = {"host": host, "machine": machine}


def main(argv=None):
    """Entry point: run the CLI, turn errors into one line on stderr and an exit status.

    Returns:
        The exit status (``sys.exit`` it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    app = App()
    try:
        with cli.make_context("hostbridge", argv, obj=app) as ctx:
            cli.invoke(ctx)
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        app.err("Aborted.")
        return 1
    except HostbridgeError as e:
        app.report(e)
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except Exception as e:  # an unexpected error: one line, or the traceback when asked
        if app.debug:
            import traceback

            traceback.print_exc()
        else:
            app.err("Error: unexpected %s: %s (run with -v or HOSTBRIDGE_DEBUG=1 for the traceback)"
                    % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
