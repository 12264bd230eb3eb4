"""``config``: show and change settings in the one TOML config file."""

from __future__ import annotations

import click


@click.group("config")
def config():
    """Show or change hostbridge's settings (flags > environment > file > defaults)."""


@config.command("list")
@click.pass_obj
def list_(app):
    """Every setting, its value and where it comes from."""
    from .. import config as cfg
    from .format import table

    c = app.config
    rows = [["KEY", "VALUE", "FROM"]]
    for key in sorted(cfg.SETTINGS):
        value = c[key]
        rows.append([key, "%g" % value if isinstance(value, float) else str(value), c.origin[key]])
    app.out(table(rows), nl=False)


@config.command()
@click.argument("key")
@click.pass_obj
def get(app, key):
    """Print one setting's value."""
    from .. import config as cfg
    from ..errors import ConfigError

    if key not in cfg.SETTINGS:
        raise ConfigError("unknown setting %r" % key, hint="see `hostbridge config list`")
    value = app.config[key]
    app.out("%g" % value if isinstance(value, float) else value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_(app, key, value):
    """Write a setting to the config file; vm.cpus, vm.memory and vm.disk also resize the selected VM
    when it is stopped (as `podman machine set` does)."""
    from .. import config as cfg

    if key in SIZE_KEYS:
        _resize_selected(app, key, value)
    app.status("Wrote %s" % cfg.set_value(key, value))


SIZE_KEYS = {"vm.cpus": "cpus", "vm.memory": "memory_mib", "vm.disk": "disk_gib"}


def _resize_selected(app, key, value):
    """Resize the selected machine, when it is a VM, before the setting is written (a refusal
    writes nothing)."""
    from ..errors import ConfigError
    from ..machines import record, resize, vmmode

    name = app.config["machine"]
    rec = record.load(name)
    if rec is None or rec.mode != vmmode.MODE:
        return
    try:
        size = vmmode.parse_size_gib(value) if key == "vm.disk" else int(value)
    except ValueError:
        raise ConfigError("%s must be a whole number, not %r" % (key, value)) from None
    with record.lock(name):
        changes = resize.resize_vm(record.load(name), **{SIZE_KEYS[key]: size})
    if changes:
        app.status("Machine %s resized (%s): it takes effect at its next `hostbridge up`" % (
            name, resize.describe(changes)))


@config.command()
@click.argument("key")
@click.pass_obj
def unset(app, key):
    """Remove a setting from the config file (back to its default)."""
    from .. import config as cfg

    app.status("Wrote %s" % cfg.set_value(key, None))


@config.command()
@click.pass_obj
def path(app):
    """Print the config file's path."""
    from .. import paths

    app.out(paths.config_file())
