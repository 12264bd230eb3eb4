"""The one TOML config: load (no validation) → fill defaults → validate.

Precedence, highest first: command-line flags > environment > the config file > defaults.
Every setting is declared once in ``SETTINGS`` with its type, default and environment variable.

Example ``config.toml``::

    machine = "default"
    timeout = 60

    [native]
    root = "/var/lib/hostbridge"
    socket = "/run/hostbridge/docker.sock"
"""

from __future__ import annotations

import os
from collections.abc import Mapping  # not typing: importing it costs `hostbridge ps` 2 ms

from . import paths
from .errors import ConfigError


class Setting:
    """One setting: dotted key, type, default, environment variable and a one-line help."""

    def __init__(self, key, type_, default, env, help_):
        self.key, self.type, self.default, self.env, self.help = key, type_, default, env, help_


SETTINGS = {
    s.key: s
    for s in (
        Setting("machine", str, "default", "HOSTBRIDGE_MACHINE", "the machine commands talk to"),
        Setting("host", str, "", "HOSTBRIDGE_HOST", "an explicit engine endpoint (unix:///… or tcp://127.0.0.1:N)"),
        Setting("timeout", float, 60.0, "HOSTBRIDGE_TIMEOUT", "seconds to wait for an engine reply"),
        Setting("native.root", str, "/var/lib/hostbridge", "HOSTBRIDGE_NATIVE_ROOT", "native engine state dir"),
        Setting("native.socket", str, "/run/hostbridge/docker.sock", "HOSTBRIDGE_NATIVE_SOCKET",
                "native engine socket"),
        Setting("native.group", str, "hostbridge", "HOSTBRIDGE_NATIVE_GROUP", "group owning the native socket"),
        Setting("native.python", str, "", "HOSTBRIDGE_NATIVE_PYTHON",
                "python3 running the native engine (empty: this interpreter)"),
        Setting("native.start_timeout", float, 30.0, "HOSTBRIDGE_NATIVE_START_TIMEOUT",
                "seconds `up` waits for the native engine's /_ping"),
        Setting("vm.driver", str, "", "HOSTBRIDGE_VM_DRIVER",
                "driver for new machines: vagrant, qemu (empty: chosen per OS)"),
        Setting("vm.cpus", int, 2, "HOSTBRIDGE_VM_CPUS", "CPUs of a new VM"),
        Setting("vm.memory", int, 2048, "HOSTBRIDGE_VM_MEMORY", "memory of a new VM, MiB"),
        Setting("vm.disk", str, "20G", "HOSTBRIDGE_VM_DISK", "disk size of a new VM (e.g. 20G)"),
        Setting("vm.shares", str, "~", "HOSTBRIDGE_VM_SHARES",
                "host folders mounted at the same path in a new VM (%s-separated; \"\": none)" % os.pathsep),
        Setting("vm.start_timeout", float, 300.0, "HOSTBRIDGE_VM_START_TIMEOUT",
                "seconds `up` waits for the VM's SSH (emulated CPUs boot slowly)"),
        Setting("vm.image_url", str, "", "HOSTBRIDGE_VM_IMAGE_URL",
                "a published guest image to download instead of building one"),
        Setting("vm.image_sha256", str, "", "HOSTBRIDGE_VM_IMAGE_SHA256", "the published image's sha256"),
        Setting("vm.mirror", str, "", "HOSTBRIDGE_VM_MIRROR",
                "Debian mirror the guest's packages come from (empty: this host's apt mirror, else deb.debian.org)"),
    )
}


def load_file(path: str) -> dict[str, object]:
    """Read a TOML file into a flat ``{"section.key": value}`` dict, unvalidated.

    Args:
        path: the file; a missing file reads as empty.
    Returns:
        The flattened settings found in the file.
    Raises:
        ConfigError: the file is not valid TOML.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    try:
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        doc = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError("%s is not valid TOML: %s" % (path, e), hint="fix or remove the file")
    return _flatten(doc)


def _flatten(doc, prefix=""):
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def _from_env(environ: Mapping[str, str]):
    return {s.key: environ[s.env] for s in SETTINGS.values() if environ.get(s.env)}


def _coerce(setting: Setting, value, origin: str):
    if setting.type in (int, float):
        kind = "a whole number" if setting.type is int else "a number"
        bad = ConfigError("%s (from %s) must be %s, not %r" % (setting.key, origin, kind, value))
        if isinstance(value, bool) or setting.type is int and isinstance(value, float) and not value.is_integer():
            raise bad
        try:
            number = setting.type(value)
        except (TypeError, ValueError):
            raise bad from None
        if number <= 0:
            raise ConfigError("%s (from %s) must be positive, not %r" % (setting.key, origin, value))
        return number
    if not isinstance(value, str):
        raise ConfigError("%s (from %s) must be a string, not %r" % (setting.key, origin, value))
    return value


class Config:
    """The resolved settings; ``config["native.socket"]`` or ``config.get(key)``.

    ``origin[key]`` says where each value came from (flag, env, file, default).
    """

    def __init__(self, values: dict[str, object], origin: dict[str, str], path: str):
        self.values = values
        self.origin = origin
        self.path = path

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)


def load(flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None,
         path: str | None = None) -> Config:
    """Resolve the configuration: defaults, then the file, then the environment, then flags.

    Args:
        flags: settings given on the command line (``None`` values are ignored).
        environ: the environment (``os.environ`` by default).
        path: the config file (``paths.config_file()`` by default).
    Returns:
        A validated ``Config``.
    Raises:
        ConfigError: an unknown key in the file, or a value of the wrong type.
    """
    environ = os.environ if environ is None else environ
    path = path or paths.config_file()
    layers = [
        ("default", {k: s.default for k, s in SETTINGS.items()}),
        (path, load_file(path)),
        ("environment", _from_env(environ)),
        ("flag", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    values, origin = {}, {}
    for name, layer in layers:
        for key, value in layer.items():
            setting = SETTINGS.get(key)
            if setting is None:
                raise ConfigError("unknown setting %r in %s" % (key, name),
                                  hint="known: %s" % ", ".join(sorted(SETTINGS)))
            values[key] = _coerce(setting, value, name)
            origin[key] = name
    return Config(values, origin, path)


def _toml_value(value):
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    import json

    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string


def dump_toml(flat: dict[str, object]) -> str:
    """Write flat ``{"section.key": value}`` settings as TOML (top-level keys first, then sections)."""
    top = {k: v for k, v in flat.items() if "." not in k}
    sections: dict[str, dict[str, object]] = {}
    for key, value in flat.items():
        if "." in key:
            section, _, name = key.rpartition(".")
            sections.setdefault(section, {})[name] = value
    lines = ["%s = %s" % (k, _toml_value(v)) for k, v in sorted(top.items())]
    for section in sorted(sections):
        lines += ["", "[%s]" % section]
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in sorted(sections[section].items())]
    return "\n".join(lines).lstrip("\n") + "\n"


def set_value(key: str, value: str | None, path: str | None = None) -> str:
    """Set (or with ``value=None`` remove) one setting in the config file, validated first.

    Args:
        key: a dotted key from ``SETTINGS``.
        value: the new value as text, or None to remove it (back to its default).
        path: the config file (``paths.config_file()`` by default).
    Returns:
        The file written.
    Raises:
        ConfigError: an unknown key or a bad value.
    """
    path = path or paths.config_file()
    setting = SETTINGS.get(key)
    if setting is None:
        raise ConfigError("unknown setting %r" % key, hint="known: %s" % ", ".join(sorted(SETTINGS)))
    current = load_file(path)
    if value is None:
        current.pop(key, None)
    else:
        current[key] = _coerce(setting, value, "the command line")
    paths.ensure_dir(os.path.dirname(path))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dump_toml(current))
    os.replace(tmp, path)
    return path
