"""The stock docker CLI's ``config.json``: registry logins the user already has, and
``credsStore: hostbridge`` for ``login --configure-docker``.

Read as docker reads it: a registry's ``credHelpers`` entry first, else the ``credsStore``
helper, else the ``auths`` entry (``auth`` = base64 ``user:password``, or ``identitytoken``).
Helpers are run as docker runs them (``docker-credential-NAME get``, the server on stdin).
``credsStore: hostbridge`` is our own keyring, already asked first, so it is not run again.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

from .contexts import config_dir
from .errors import CredentialsError
from .guest.registry.config import registry_domain

OWN_STORE = "hostbridge"
HELPER_TIMEOUT = 30  # seconds a credential helper may take (a GUI unlock prompt)
_NOT_FOUND = "credentials not found"


def path(environ=None) -> str:
    """``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``)."""
    return os.path.join(config_dir(environ), "config.json")


def load(file: str | None = None) -> dict:
    """The config as a dict ({} when the file does not exist).

    Raises:
        CredentialsError: unreadable, not JSON (naming file, line and column), or not an object.
    """
    file = file or path()
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise CredentialsError("cannot read %s (%s)" % (file, getattr(e, "strerror", None) or e),
                               hint="fix its permissions or remove it") from None
    if not text.strip():
        return {}  # docker treats an empty file as no config
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CredentialsError("%s line %d column %d: %s" % (file, e.lineno, e.colno, e.msg),
                               hint="fix the JSON or remove the file") from None
    if not isinstance(data, dict):
        raise CredentialsError("%s must hold a JSON object" % file, hint="fix or remove the file")
    return data


def _matching(mapping, registry: str):
    """The value of the key naming ``registry`` (keys may be URLs or host[:port])."""
    if not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        if registry_domain(key) == registry:
            return key, value
    return None


def run_helper(name: str, server: str, file: str) -> tuple | None:
    """``docker-credential-NAME get`` for ``server``: (username, secret) or None when it has none.

    Raises:
        CredentialsError: the helper is missing or fails otherwise.
    """
    exe = shutil.which("docker-credential-" + name)
    if not exe:
        raise CredentialsError("%s names the credential helper %r, but docker-credential-%s is not installed"
                               % (file, name, name), hint="install it, or remove it from that file")
    try:
        r = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CredentialsError("credential helper docker-credential-%s failed (%s)" % (name, e)) from None
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0:
        if _NOT_FOUND in out.lower():
            return None
        raise CredentialsError("credential helper docker-credential-%s failed: %s"
                               % (name, (out or r.stderr.decode(errors="replace")).strip().splitlines()[-1:] or "?"))
    try:
        data = json.loads(out)
        return data.get("Username", ""), data.get("Secret", "")
    except (ValueError, AttributeError):
        raise CredentialsError("credential helper docker-credential-%s answered something else than JSON" % name) \
            from None


def lookup(server: str, file: str | None = None) -> dict | None:
    """The docker CLI's login for a registry, as an AuthConfig dict, or None.

    Returns:
        {"username", "password", "serveraddress"} or {"identitytoken", "serveraddress"}.
    Raises:
        CredentialsError: a malformed config or a helper that fails.
    """
    file = file or path()
    conf = load(file)
    registry = registry_domain(server)
    helper = _matching(conf.get("credHelpers"), registry)
    store = conf.get("credsStore")
    name = helper[1] if helper else store if isinstance(store, str) and store else None
    if name and name != OWN_STORE:
        key = helper[0] if helper else (_matching(conf.get("auths"), registry) or (None,))[0]
        url = key or ("https://index.docker.io/v1/" if registry == "docker.io" else registry)
        got = run_helper(name, url, file)
        if got is None:
            return None
        user, secret = got
        if user == "<token>":
            return {"identitytoken": secret, "serveraddress": url}
        return {"username": user, "password": secret, "serveraddress": url}
    entry = _matching(conf.get("auths"), registry)
    if not entry or not isinstance(entry[1], dict):
        return None
    key, value = entry
    if value.get("identitytoken"):
        return {"identitytoken": value["identitytoken"], "serveraddress": key}
    if value.get("auth"):
        try:
            user, _, secret = base64.b64decode(value["auth"]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CredentialsError("%s: the auth of %s is not base64 user:password" % (file, key),
                                   hint="log in again with `docker login %s`" % key) from None
        return {"username": user, "password": secret, "serveraddress": key}
    if value.get("username"):
        return {"username": value["username"], "password": value.get("password", ""), "serveraddress": key}
    return None


def configure_store(file: str | None = None) -> tuple:
    """Set ``credsStore: hostbridge``, keeping everything else; atomic, mode kept (0600 if new).

    Returns:
        (the file, the previous credsStore or "").
    Raises:
        CredentialsError: a malformed config or a write failure.
    """
    file = file or path()
    conf = load(file)
    previous = conf.get("credsStore") or ""
    conf["credsStore"] = OWN_STORE
    os.makedirs(os.path.dirname(file), mode=0o700, exist_ok=True)
    tmp = file + ".tmp"
    try:
        mode = os.stat(file).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(conf, f, indent="\t")
            f.write("\n")
        os.replace(tmp, file)
    except OSError as e:
        raise CredentialsError("cannot write %s (%s)" % (file, e.strerror or e)) from None
    return file, previous


__all__ = ["path", "load", "lookup", "run_helper", "configure_store", "OWN_STORE"]
