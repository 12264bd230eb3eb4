"""Docker contexts for machines: ``hostbridge-NAME`` pointing at the machine's endpoint.

Written the way the docker CLI stores them, so they work before docker is even installed:
``$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json`` (default ``~/.docker``), holding
``{"Name", "Metadata": {"Description", "Hostbridge"}, "Endpoints": {"docker": {"Host",
"SkipTLSVerify"}}}``. ``Metadata.Hostbridge`` (the machine's name) marks a context as ours:
one without it is the user's and is never overwritten or removed. ``env`` stays the other way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

from .errors import ConfigError, HostbridgeError

PREFIX = "hostbridge-"
MARK = "Hostbridge"  # Metadata key naming the machine a context belongs to
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$")  # docker's rule for context names


class ContextError(HostbridgeError):
    """A docker context could not be written or removed (e.g. the user's own has the name)."""


def config_dir(environ=None) -> str:
    """The docker CLI's config directory: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def context_name(machine: str) -> str:
    """``hostbridge-NAME``: the docker context of machine ``machine``.

    Raises:
        ConfigError: the result is not a valid docker context name.
    """
    name = PREFIX + machine
    if not _NAME.match(name):
        raise ConfigError("machine name %r cannot name a docker context" % machine,
                          hint="use letters, digits, '_', '.', '+' or '-'")
    return name


def meta_path(name: str, base: str | None = None) -> str:
    """Where the docker CLI keeps context ``name``'s meta.json (its directory is sha256(name))."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return os.path.join(base or config_dir(), "contexts", "meta", digest, "meta.json")


def context_meta(machine: str, endpoint_url: str) -> dict:
    """The meta.json content for machine ``machine``'s context (pure)."""
    return {"Name": context_name(machine),
            "Metadata": {"Description": "hostbridge machine %s" % machine, MARK: machine},
            "Endpoints": {"docker": {"Host": endpoint_url, "SkipTLSVerify": False}}}


def read(name: str, base: str | None = None) -> dict | None:
    """Context ``name``'s meta.json, or None when there is no such context.

    Raises:
        ContextError: the file exists but cannot be read as JSON.
    """
    path = meta_path(name, base)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ContextError("docker context %s is unreadable (%s: %s)" % (name, path, e),
                           hint="fix or remove it with `docker context rm %s`" % name) from None


def owner(meta: dict | None) -> str | None:
    """The machine a context belongs to, or None for a context hostbridge did not write."""
    data = (meta or {}).get("Metadata")
    value = data.get(MARK) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def write(machine: str, endpoint_url: str, base: str | None = None) -> str:
    """Create or update machine ``machine``'s context to point at ``endpoint_url``.

    Returns:
        The context's name.
    Raises:
        ContextError: a context of that name exists and is not ours (it is left untouched),
            or the file cannot be written.
    """
    name = context_name(machine)
    existing = read(name, base)
    if existing is not None and owner(existing) != machine:
        raise ContextError("a docker context named %s exists and was not made by hostbridge: left as it is" % name,
                           hint="remove it with `docker context rm %s` to let hostbridge make its own" % name)
    path = meta_path(name, base)
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        tmp = path + ".%d.tmp" % os.getpid()
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(context_meta(machine, endpoint_url), f)
        os.replace(tmp, path)
    except OSError as e:
        raise ContextError("cannot write docker context %s at %s: %s" % (name, path, e.strerror or e)) from None
    return name


def remove(machine: str, base: str | None = None) -> bool:
    """Remove machine ``machine``'s context, when it is ours; a current context is unselected.

    Returns:
        Whether a context was removed (False: none, or one hostbridge did not make).
    Raises:
        ContextError: it cannot be removed.
    """
    name = context_name(machine)
    meta = read(name, base)
    if meta is None or owner(meta) != machine:
        return False
    try:
        shutil.rmtree(os.path.dirname(meta_path(name, base)))
    except OSError as e:
        raise ContextError("cannot remove docker context %s: %s" % (name, e.strerror or e)) from None
    unselect(name, base)
    return True


def current(base: str | None = None) -> str:
    """The context the docker CLI uses by default (config.json's ``currentContext``; "" when unset)."""
    try:
        with open(os.path.join(base or config_dir(), "config.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return ""
    value = data.get("currentContext") if isinstance(data, dict) else ""
    return value if isinstance(value, str) else ""


def unselect(name: str, base: str | None = None) -> bool:
    """Drop ``currentContext`` from config.json when it is ``name`` (as `docker context rm -f` does).

    A current context that no longer exists would make every docker command fail.

    Returns:
        Whether config.json was changed.
    """
    path = os.path.join(base or config_dir(), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("currentContext") != name:
        return False
    del data["currentContext"]
    tmp = path + ".%d.tmp" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent="\t")
    os.replace(tmp, path)
    return True
