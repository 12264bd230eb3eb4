"""Registry credentials in the OS keyring, the ``X-Registry-Auth`` header, and a docker
credential helper (``docker-credential-hostbridge``) so the stock docker CLI can keep its
credentials in the OS keyring too.

Keyring layout (nothing is ever written to a plaintext file by this module):
- service ``hostbridge:REGISTRY``, user = the registry user, password = the secret;
- service ``hostbridge``, user ``registries``: a JSON index ``{REGISTRY: {"Username", "ServerURL"}}``
  (no secrets) so credentials can be listed and found by registry alone.
REGISTRY is the normalised registry name (``docker.io``, ``myregistry:5000``); ``ServerURL`` keeps
the address as the docker CLI spelled it (``https://index.docker.io/v1/`` for Docker Hub).
"""

from __future__ import annotations

import base64
import json
import sys

from .errors import CredentialsError
from .guest.images.reference import parse as parse_reference
from .guest.registry.config import registry_domain

SERVICE_PREFIX = "hostbridge:"
INDEX_SERVICE = "hostbridge"
INDEX_USER = "registries"
HUB_SERVER_URL = "https://index.docker.io/v1/"
NOT_FOUND = "credentials not found in native keychain"


class Credential:
    """A stored credential: ``registry`` (normalised), ``username``, ``secret``, ``server_url``."""

    __slots__ = ("registry", "username", "secret", "server_url")

    def __init__(self, registry, username, secret, server_url):
        self.registry, self.username, self.secret, self.server_url = registry, username, secret, server_url

    def __repr__(self):  # never show the secret
        return "Credential(%r, username=%r)" % (self.registry, self.username)


def normalize_registry(server: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://reg:5000/x`` → ``reg:5000``."""
    return registry_domain(server)


ALLOW_INSECURE_ENV = "HOSTBRIDGE_ALLOW_INSECURE_KEYRING"
# Backends that keep secrets readable on disk, or drop them: keyrings.alt's file, registry
# and pyfs keyrings (its own docs call them less secure), and keyring's null backend.
_INSECURE_MODULES = ("keyrings.alt.", "keyring.backends.null")
_MIN_PRIORITY = 1  # every OS keyring scores more (Secret Service 5, KWallet ~5, macOS, Windows)


def _keyring():
    try:
        import keyring
        import keyring.errors
    except ImportError as e:  # pragma: no cover - keyring is a dependency
        raise CredentialsError("the keyring package is missing", hint="pip install keyring") from e
    return keyring


def _backends(backend):
    """The backends a chainer (keyring's default when several are found) hands secrets to."""
    return list(getattr(backend, "backends", None) or [backend])


def check_backend(backend) -> None:
    """Refuse a keyring backend that would keep registry secrets in plaintext (or drop them).

    Refused: keyrings.alt's backends and keyring's null backend, and any backend whose
    ``priority`` is below 1 or cannot be read (keyring's own measure of how suitable it is),
    unless ``HOSTBRIDGE_ALLOW_INSECURE_KEYRING=1``. keyring's "no backend" is left to the call,
    which raises ``NoKeyringError`` as before.

    Raises:
        CredentialsError: the backend is refused; the message names it and the way out.
    """
    import os

    if os.environ.get(ALLOW_INSECURE_ENV) == "1":
        return
    for b in _backends(backend):
        cls = type(b)
        name = "%s.%s" % (cls.__module__, cls.__name__)
        if name == "keyring.backends.fail.Keyring":
            continue
        why = None
        if cls.__module__.startswith(_INSECURE_MODULES) or name.startswith(_INSECURE_MODULES):
            why = "keeps secrets unprotected"
        else:
            try:
                prio = float(b.priority)
            except Exception:  # a backend's priority may raise: it says it is not fit here
                prio = None
            if prio is None or prio < _MIN_PRIORITY:
                why = "is not a secure keyring (priority %s)" % ("unknown" if prio is None else prio)
        if why:
            raise CredentialsError(
                "refusing to store registry secrets: the keyring backend %s %s" % (name, why),
                hint="install and unlock a secure backend (gnome-keyring / Secret Service or KWallet on "
                     "Linux; choose it with PYTHON_KEYRING_BACKEND), or set %s=1 to accept this one"
                     % ALLOW_INSECURE_ENV)


def _call(fn, *args):
    kr = _keyring()
    try:
        return fn(*args)
    except kr.errors.KeyringError as e:
        raise CredentialsError("cannot use the OS keyring (%s)" % (str(e) or e.__class__.__name__),
                               hint="unlock the keyring, or install a keyring backend "
                                    "(e.g. gnome-keyring or KWallet on Linux)") from e


def _index() -> dict:
    raw = _call(_keyring().get_password, INDEX_SERVICE, INDEX_USER)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _save_index(index: dict) -> None:
    _call(_keyring().set_password, INDEX_SERVICE, INDEX_USER, json.dumps(index, sort_keys=True))


def store(server: str, username: str, secret: str) -> Credential:
    """Store credentials for a registry, replacing earlier ones.

    Args:
        server: the registry as typed or as docker sends it (``myreg:5000``, ``https://…/v1/``).
        username: the registry user.
        secret: the password or token.
    Returns:
        The stored Credential.
    Raises:
        CredentialsError: the keyring refused; or an empty username.
    """
    if not username:
        raise CredentialsError("a registry username is required", hint="give --username")
    reg = normalize_registry(server)
    url = HUB_SERVER_URL if reg == "docker.io" else (server.strip() or reg)
    kr = _keyring()
    check_backend(kr.get_keyring())  # before any secret is handed to it
    index = _index()
    old = index.get(reg)
    if old and old.get("Username") != username:
        _delete(SERVICE_PREFIX + reg, old.get("Username", ""))
    _call(kr.set_password, SERVICE_PREFIX + reg, username, secret)
    index[reg] = {"Username": username, "ServerURL": url}
    _save_index(index)
    return Credential(reg, username, secret, url)


def get(server: str):
    """The credentials for a registry, or None.

    Raises:
        CredentialsError: the keyring refused.
    """
    reg = normalize_registry(server)
    kr = _keyring()
    try:
        entry = _index().get(reg)
    except CredentialsError as e:
        if isinstance(e.__cause__, kr.errors.NoKeyringError):
            return None  # no keyring at all, so nothing was ever stored: anonymous access
        raise
    if not entry:
        return None
    secret = _call(_keyring().get_password, SERVICE_PREFIX + reg, entry.get("Username", ""))
    if secret is None:
        return None
    return Credential(reg, entry.get("Username", ""), secret, entry.get("ServerURL") or reg)


def erase(server: str) -> bool:
    """Forget a registry's credentials. Returns False when there were none.

    Raises:
        CredentialsError: the keyring refused.
    """
    reg = normalize_registry(server)
    index = _index()
    entry = index.pop(reg, None)
    if entry is None:
        return False
    _delete(SERVICE_PREFIX + reg, entry.get("Username", ""))
    _save_index(index)
    return True


def _delete(service, user):
    kr = _keyring()
    try:
        kr.delete_password(service, user)
    except kr.errors.PasswordDeleteError:
        pass  # already gone: erasing is idempotent
    except kr.errors.KeyringError as e:
        raise CredentialsError("cannot use the OS keyring (%s)" % e, hint="unlock the keyring") from e


def list_all() -> dict:
    """``{ServerURL: Username}`` for every stored registry (docker's ``list`` shape)."""
    return {e.get("ServerURL") or reg: e.get("Username", "") for reg, e in _index().items()}


def encode_auth(auth: dict) -> str:
    """Encode a docker AuthConfig dict for ``X-Registry-Auth`` (base64url JSON, as docker does)."""
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def build_config_header() -> str:
    """The ``X-Registry-Config`` value for a build: every stored registry's credentials, so that a
    FROM on a private registry pulls with them (as ``docker build`` sends its config's auths), then
    the stock CLI's logins (``dockerconfig``) for registries the keyring has none for. Empty when
    there are none.

    Raises:
        CredentialsError: the keyring refused; the docker config is malformed or its helper fails.
    """
    try:
        index = _index()
    except CredentialsError as e:
        if not isinstance(e.__cause__, _keyring().errors.NoKeyringError):
            raise
        index = {}  # no keyring at all: only the docker CLI's logins can count
    configs = {}
    for reg in index:
        cred = get(reg)
        if cred is not None:
            configs[cred.server_url] = {"username": cred.username, "password": cred.secret,
                                        "serveraddress": cred.server_url}
    # The stock CLI's logins for the registries the keyring has none for (as `docker build` sends them).
    from . import dockerconfig

    have = {normalize_registry(url) for url in configs}
    docker_conf = dockerconfig.load()
    for server in sorted(set(docker_conf.get("auths") or {}) | set(docker_conf.get("credHelpers") or {})):
        if normalize_registry(server) in have:
            continue
        found = dockerconfig.lookup(server)
        if found:
            configs[found["serveraddress"]] = found
            have.add(normalize_registry(server))
    return encode_auth(configs) if configs else ""


def auth_header(server: str) -> str:
    """The ``X-Registry-Auth`` value for a registry: its stored credentials, else the docker
    CLI's login from ``~/.docker/config.json`` (as docker reads it), else anonymous.

    Raises:
        CredentialsError: the keyring refused; the docker config is malformed or its helper fails.
    """
    cred = get(server)
    if cred is None:
        from . import dockerconfig

        return encode_auth(dockerconfig.lookup(server) or {})
    return encode_auth({"username": cred.username, "password": cred.secret,
                        "serveraddress": cred.server_url})


def auth_header_for_image(image: str) -> str:
    """The ``X-Registry-Auth`` value for pulling or pushing ``image`` (its registry's credentials).

    Raises:
        CredentialsError: the keyring refused.
        hostbridge.guest.errors.InvalidParameter: not a valid image reference.
    """
    return auth_header(parse_reference(image).domain)


# ---- docker credential helper protocol ---------------------------------------------------
def helper_main(argv=None, stdin=None, stdout=None) -> int:
    """``docker-credential-hostbridge get|store|erase|list|version`` (docker's helper protocol).

    ``store`` reads ``{"ServerURL","Username","Secret"}``; ``get``/``erase`` read a server URL;
    ``get`` writes ``{"ServerURL","Username","Secret"}``; ``list`` writes ``{ServerURL: Username}``.
    Errors go to stdout with exit status 1, as docker's own helpers do.

    Returns:
        The exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if len(argv) != 1 or argv[0] not in ("get", "store", "erase", "list", "version"):
        stdout.write("Usage: docker-credential-hostbridge <store|get|erase|list|version>\n")
        return 1
    action = argv[0]
    try:
        if action == "version":
            stdout.write("docker-credential-hostbridge (hostbridge)\n")
        elif action == "store":
            try:
                data = json.loads(stdin.read())
            except ValueError:
                stdout.write("error reading credentials: expected JSON {ServerURL, Username, Secret}\n")
                return 1
            if not isinstance(data, dict) or not data.get("ServerURL"):
                stdout.write("no credentials server URL\n")
                return 1
            store(data["ServerURL"], data.get("Username", ""), data.get("Secret", ""))
        elif action == "list":
            stdout.write(json.dumps(list_all()))
        else:
            server = stdin.read().strip()
            if not server:
                stdout.write("no credentials server URL\n")
                return 1
            if action == "erase":
                if not erase(server):
                    stdout.write(NOT_FOUND + "\n")
                    return 1
            else:
                cred = get(server)
                if cred is None:
                    stdout.write(NOT_FOUND + "\n")
                    return 1
                stdout.write(json.dumps({"ServerURL": server, "Username": cred.username, "Secret": cred.secret}))
    except CredentialsError as e:
        stdout.write("%s\n" % e)
        return 1
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(helper_main())
