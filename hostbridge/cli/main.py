"""The ``hostbridge`` command: the root group, lazy sub-commands, and error reporting."""

from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__
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
    "pull": ("registry", "pull"),
    "push": ("registry", "push"),
    "search": ("registry", "search"),
    "login": ("registry", "login"),
    "logout": ("registry", "logout"),
    "version": ("system", "version"),
    "info": ("system", "info"),
    "config": ("config_cmd", "config"),
    "up": ("machine", "up"),
    "down": ("machine", "down"),
    "status": ("machine", "status"),
    "remote": ("remote", "remote_group"),
    "tunnel": ("remote", "tunnel_group"),
    "context": ("remote", "context_group"),
    "env": ("env", "env_command"),
    "use": ("use", "use"),
    "cp": ("copy", "cp"),
    "port": ("container_ops", "port"),
    "diff": ("container_ops", "diff"),
    "commit": ("container_ops", "commit"),
    "export": ("container_ops", "export"),
    "update": ("container_ops", "update"),
    "stats": ("stats", "stats"),
    "events": ("events", "events"),
    "destroy": ("machine", "destroy"),
    "upgrade": ("machine", "upgrade"),
    "ls": ("machine", "ls"),
    "completion": ("completion", "completion"),
    "ip": ("machine", "ip"),
    "ssh": ("machine", "ssh"),
    "ssh-config": ("machine", "ssh_config"),
    "doctor": ("doctor", "doctor"),
    "machine": ("machine", "machine_group"),
}
# Names docker uses for containers that also name a machine command: `hostbridge restart` with
# no container, and `hostbridge logs --serial|--engine|--agent`, act on the machine.
MACHINE_FORMS = {"restart": ("machine", "restart"), "logs": ("machine", "machine_logs")}
_MACHINE_ONLY = {"restart": ("--machine", "--timeout"), "logs": ("--serial", "--engine", "--agent")}


def machine_form(name, args) -> bool:
    """Whether ``hostbridge NAME ARGS`` means the machine command rather than docker's (pure)."""
    if name == "restart":
        rest = list(args)
        while rest and rest[0].split("=", 1)[0] in _MACHINE_ONLY["restart"]:
            rest = rest[1:] if "=" in rest[0] else rest[2:]
        return not rest
    if name == "logs":
        return any(a in _MACHINE_ONLY["logs"] for a in args) or not args
    return False

_CONTAINER_VERBS = ("run", "create", "start", "logs", "exec", "stop", "kill", "rm", "restart", "wait", "rename",
                    "pause", "unpause", "top", "cp", "port", "diff", "commit", "export", "update", "stats")

# docker's management groups (`docker container prune`, `docker network ls`): help → their own table.
GROUPS = {
    "container": ("Manage containers.", dict(
        {v: COMMANDS[v] for v in _CONTAINER_VERBS},
        ls=("containers", "ps"), ps=("containers", "ps"), prune=("prune", "container_prune"),
        inspect=("inspect", "container_inspect"))),
    "image": ("Manage images.", {
        "ls": ("images", "images"), "rm": ("images", "rmi"), "tag": COMMANDS["tag"], "save": COMMANDS["save"],
        "load": COMMANDS["load"], "import": COMMANDS["import"], "history": COMMANDS["history"],
        "build": COMMANDS["build"], "prune": ("prune", "image_prune"), "inspect": ("inspect", "image_inspect")}),
    "system": ("Manage the engine's resources.", {
        "df": ("disk", "system_df"), "prune": ("prune", "system_prune"), "info": COMMANDS["info"],
        "events": COMMANDS["events"]}),
    "network": ("Manage networks.", dict({
        verb: ("networks", "network_" + verb) for verb in ("ls", "create", "inspect", "rm", "connect",
                                                            "disconnect")}, prune=("prune", "network_prune"))),
    "volume": ("Manage volumes.", dict({
        verb: ("volumes", "volume_" + verb) for verb in ("ls", "create", "inspect", "rm")},
        prune=("prune", "volume_prune"))),
}
ALIASES = {"network": {"list": "ls", "remove": "rm"}, "volume": {"list": "ls", "remove": "rm"},
           "container": {"list": "ls", "remove": "rm"}, "image": {"list": "ls", "remove": "rm"}}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use.

    Args:
        table: name → (module, attribute) of its commands (the root's ``COMMANDS`` by default).
        groups: name → (help, table) of its management sub-groups.
        aliases: other names → the command's name (``network remove`` → ``rm``).
    """

    def __init__(self, *args, table=None, groups=None, aliases=None, **kw):
        super().__init__(*args, **kw)
        self.table = COMMANDS if table is None else table
        self.groups = GROUPS if groups is None and table is None else (groups or {})
        self.aliases = aliases or {}

    def list_commands(self, ctx):
        return sorted(set(self.table) | set(self.groups) | set(self.commands))

    def get_command(self, ctx, name):
        name = self.aliases.get(name, name)
        if name in self.commands:
            return self.commands[name]
        if name in self.groups:
            help_, table = self.groups[name]
            return LazyGroup(name, help=help_, table=table, aliases=ALIASES.get(name))
        if name not in self.table:
            return None
        module, attr = self.table[name]
        command = getattr(importlib.import_module("hostbridge.cli." + module), attr)
        if os.environ.get("_HOSTBRIDGE_COMPLETE"):  # a Tab in the shell: names come from the engine
            from .completion import attach

            attach(command)
        return command

    def resolve_command(self, ctx, args):
        if args and args[0] in MACHINE_FORMS and machine_form(args[0], args[1:]):
            module, attr = MACHINE_FORMS[args[0]]
            return args[0], getattr(importlib.import_module("hostbridge.cli." + module), attr), args[1:]
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Less output.")
@click.option("-H", "--host", metavar="URL", help="Engine endpoint (unix:///path, npipe:////./pipe/NAME or tcp://127.0.0.1:PORT).")
@click.option("-m", "--machine", metavar="NAME", help="The machine to talk to (default: HOSTBRIDGE_MACHINE or config).")
@click.version_option(__version__, message="hostbridge %(version)s")
@click.pass_obj
def cli(app, verbose, quiet, host, machine):
    """Run docker containers natively on Linux, in a small VM, or on a remote host over SSH."""
    app.verbosity = -1 if quiet else verbose
    app.flags = {"host": host, "machine": machine}


def main(argv=None, app=None):
    """Run the click CLI; errors become one line on stderr and an exit status.

    Args:
        argv: the arguments (``sys.argv[1:]``).
        app: the ``App`` to use (a new one).
    Returns:
        The exit status (``sys.exit`` it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    app = App() if app is None else app
    if os.environ.get("_HOSTBRIDGE_COMPLETE"):
        from .completion import complete

        return complete(os.environ["_HOSTBRIDGE_COMPLETE"], app)
    return app.run(lambda: _invoke(app, argv))


def _invoke(app, argv):
    try:
        with cli.make_context("hostbridge", argv, obj=app) as ctx:
            cli.invoke(ctx)
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        return _usage_error(app, e)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        app.err("Aborted.")
        return 1


def _usage_error(app, e):
    """A usage error in docker's words: an unknown command exits 1, a bad flag or argument 125."""
    path = e.ctx.command_path if e.ctx is not None else "hostbridge"
    msg = e.format_message()
    if msg.startswith("No such command"):
        name = msg.split("'")[1] if "'" in msg else ""
        usage = "\n\nUsage:  %s" % path if " " in path else ""  # docker names the group it was under
        app.err("%s: unknown command: %s %s%s\n\nRun '%s --help' for more information"
                % (path.split()[0], path, name, usage, path))
        return 1
    if isinstance(e, click.NoSuchOption):
        opt = e.option_name
        msg = "unknown flag: %s" % opt if opt.startswith("--") else "unknown shorthand flag: '%s' in %s" % (opt[1:2], opt)
    usage = e.ctx.get_usage().replace("Usage: ", "Usage:  ", 1) if e.ctx is not None else ""
    app.err("%s\n\n%s\n\nRun '%s --help' for more information" % (msg, usage, path))
    return 125


if __name__ == "__main__":
    sys.exit(main())
