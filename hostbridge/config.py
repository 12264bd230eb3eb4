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
        Setting("host", str, "", "HOSTBRIDGE_HOST", "an explicit engine endpoint (unix:///…, npipe:////./pipe/NAME or tcp://127.0.0.1:N)"),
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
        Setting("vm.shares", str, "auto", "HOSTBRIDGE_VM_SHARES",
                "host folders shared with a new VM (%s-separated; \"\": none; auto: macOS /Users, Windows "
                "C:\\Users at /c/Users, Linux ~; others at the same path)" % os.pathsep),
        Setting("vm.start_timeout", float, 300.0, "HOSTBRIDGE_VM_START_TIMEOUT",
                "seconds `up` waits for the VM's SSH (emulated CPUs boot slowly)"),
        Setting("vm.image_url", str, "", "HOSTBRIDGE_VM_IMAGE_URL",
                "a published guest image to download instead of building one"),
        Setting("vm.image_sha256", str, "", "HOSTBRIDGE_VM_IMAGE_SHA256", "the published image's sha256"),
        Setting("vm.proxy", str, "", "HOSTBRIDGE_VM_PROXY",
                "proxy URL for the engine's registry traffic (empty: the host's HTTP(S)_PROXY; none: no proxy)"),
        Setting("vm.no_proxy", str, "", "HOSTBRIDGE_VM_NO_PROXY",
                "hosts, domains, IPs or CIDRs the engine reaches without the proxy (empty: the host's NO_PROXY)"),
        Setting("registry.ca", str, "", "HOSTBRIDGE_REGISTRY_CA",
                "extra CA certificates the engine trusts for registries: a PEM file or a folder of *.crt/*.pem"),
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


_HEADER = None  # compiled on first use: `hostbridge ps` never edits the config


def _patterns():
    global _HEADER
    if _HEADER is None:
        import re

        _HEADER = (re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\s*(#.*)?$"),
                   re.compile(r"^(\s*)([A-Za-z0-9_\-\".]+?)\s*=\s*"))
    return _HEADER


def _value_end(line: str, start: int) -> int:
    """Where a one-line TOML scalar starting at ``start`` ends (strings with escapes, bare words)."""
    if line.startswith(('"', "'"), start):
        quote, i = line[start], start + 1
        while i < len(line):
            if quote == '"' and line[i] == "\\":
                i += 2
                continue
            if line[i] == quote:
                return i + 1
            i += 1
        return len(line)
    i = start
    while i < len(line) and line[i] not in " \t#":
        i += 1
    return i


def edit_toml(text: str, key: str, value) -> str:
    """``text`` with one setting set (or removed when ``value`` is None), everything else as it was:
    comments, order, blank lines, a comment after the value (pure).

    Args:
        text: the config file's text.
        key: ``name`` or ``section.name``.
        value: a str/int/float, or None to remove the line.
    """
    header, assign = _patterns()
    section, _, name = key.rpartition(".")
    lines = text.splitlines(keepends=True)
    current, found, last_in_section, first_header, section_line = "", None, None, None, None
    for i, line in enumerate(lines):
        h = header.match(line)
        if h and not line.lstrip().startswith("[["):
            current = h.group(1).replace('"', "").replace(" ", "")
            if first_header is None:
                first_header = i
            if current == section:
                section_line = i
            continue
        m = assign.match(line)
        if not m:
            continue
        k = m.group(2).replace('"', "")
        full = (current + "." + k) if current else k
        if current == section:
            last_in_section = i
        if full == key:
            found = (i, m)
    rendered = None if value is None else "%s = %s" % (name, _toml_value(value))
    if found is not None:
        i, m = found
        if value is None:
            del lines[i]
        else:
            line = lines[i]
            end = _value_end(line, m.end())
            newline = "\n" if line.endswith("\n") else ""
            lines[i] = line[:m.end()] + _toml_value(value) + line[end:].rstrip("\r\n") + newline
        return "".join(lines)
    if value is None:
        return text
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if not section:
        if last_in_section is not None:
            lines.insert(last_in_section + 1, rendered + "\n")
        elif first_header is not None:
            lines[first_header:first_header] = [rendered + "\n", "\n"]
        else:
            lines.append(rendered + "\n")
        return "".join(lines)
    if section_line is not None:
        at = last_in_section + 1 if last_in_section is not None and last_in_section > section_line else section_line + 1
        lines.insert(at, rendered + "\n")
        return "".join(lines)
    if lines and lines[-1].strip():
        lines.append("\n")
    lines += ["[%s]\n" % section, rendered + "\n"]
    return "".join(lines)


def set_value(key: str, value: str | None, path: str | None = None) -> str:
    """Set (or with ``value=None`` remove) one setting in the config file, validated first.

    The file is edited in place: the user's comments and layout stay. Should the edit not read
    back as intended (an unusual layout, e.g. a dotted key in another table), the file is
    written afresh from its settings instead.

    Args:
        key: a dotted key from ``SETTINGS``.
        value: the new value as text, or None to remove it (back to its default).
        path: the config file (``paths.config_file()`` by default).
    Returns:
        The file written.
    Raises:
        ConfigError: an unknown key or a bad value (the file is left as it was).
    """
    path = path or paths.config_file()
    setting = SETTINGS.get(key)
    if setting is None:
        raise ConfigError("unknown setting %r" % key, hint="known: %s" % ", ".join(sorted(SETTINGS)))
    current = load_file(path)
    coerced = None if value is None else _coerce(setting, value, "the command line")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    edited = edit_toml(text, key, coerced)
    wanted = dict(current)
    if coerced is None:
        wanted.pop(key, None)
    else:
        wanted[key] = coerced
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        ok = _flatten(tomllib.loads(edited)) == wanted
    except ValueError:
        ok = False
    if not ok:
        edited = dump_toml(wanted)
    paths.ensure_dir(os.path.dirname(path))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(edited)
    os.replace(tmp, path)
    return path
