"""Registry authentication: credentials, ``WWW-Authenticate`` challenges, bearer token cache.

Credentials reach the engine per request (``X-Registry-Auth``) and live only in memory here;
nothing in this module writes them anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time

from ..errors import InvalidParameter

DEFAULT_TOKEN_LIFETIME = 60  # seconds, as the distribution spec says when expires_in is absent
_PARAM_RE = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class AuthConfig:
    """One registry's credentials, as docker's AuthConfig.

    ``identitytoken`` is an OAuth refresh token (not used to refresh here, sent as password);
    ``registrytoken`` is a bearer token used as is.
    """

    __slots__ = ("username", "password", "serveraddress", "identitytoken", "registrytoken")

    def __init__(self, username="", password="", serveraddress="", identitytoken="", registrytoken=""):
        self.username = username or ""
        self.password = password or ""
        self.serveraddress = serveraddress or ""
        self.identitytoken = identitytoken or ""
        self.registrytoken = registrytoken or ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.identitytoken or self.registrytoken)

    def basic_pair(self):
        """The (user, secret) pair for Basic auth and token requests, or None."""
        if self.identitytoken:
            return ("<token>", self.identitytoken)
        if self.username:
            return (self.username, self.password)
        return None

    @classmethod
    def from_dict(cls, d) -> "AuthConfig":
        """Build from docker's JSON (keys in any case: ``username``/``Username``…)."""
        low = {str(k).lower(): v for k, v in (d or {}).items()}
        return cls(low.get("username"), low.get("password"), low.get("serveraddress"),
                   low.get("identitytoken"), low.get("registrytoken"))

    def __repr__(self):  # never show the secret
        return "AuthConfig(username=%r, serveraddress=%r)" % (self.username, self.serveraddress)


def decode_registry_auth(header: str) -> AuthConfig:
    """Decode an ``X-Registry-Auth`` header (base64url JSON, padded or not) as dockerd does.

    Args:
        header: the header value; empty means anonymous.
    Returns:
        An AuthConfig (anonymous when the header is empty or ``{}``).
    Raises:
        InvalidParameter: the header is not base64 JSON.
    """
    if not header or not header.strip():
        return AuthConfig()
    raw = header.strip()
    raw += "=" * (-len(raw) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError):
        try:
            data = json.loads(base64.b64decode(raw.encode()))
        except (binascii.Error, ValueError):
            raise InvalidParameter("invalid X-Registry-Auth header: not base64-encoded JSON; "
                                   "send base64url JSON as docker does") from None
    if not isinstance(data, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: expected a JSON object")
    return AuthConfig.from_dict(data)


def basic_header(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(("%s:%s" % (user, secret)).encode()).decode()


class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``scheme`` (lowercase) and its params."""

    __slots__ = ("scheme", "params")

    def __init__(self, scheme, params):
        self.scheme, self.params = scheme, params

    def __repr__(self):
        return "Challenge(%r, %r)" % (self.scheme, self.params)


def parse_challenge(header: str):
    """Parse ``Bearer realm="…",service="…",scope="…"`` or ``Basic realm="…"``.

    Returns:
        A Challenge, or None when the header is empty or has an unknown scheme.
    """
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "basic"):
        return None
    params = {}
    for m in _PARAM_RE.finditer(rest):
        val = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", val)
    return Challenge(scheme, params)


def repository_scope(repo_path: str, actions=("pull",)) -> str:
    """``repository:team/app:pull,push`` for a repository path."""
    return "repository:%s:%s" % (repo_path, ",".join(actions))


class TokenCache:
    """Bearer tokens per scope set, thread-safe, forgotten a little before they expire."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens = {}

    @staticmethod
    def key(scopes) -> str:
        return " ".join(sorted(set(scopes or ())))

    def get(self, scopes):
        with self._lock:
            hit = self._tokens.get(self.key(scopes))
        if hit and hit[1] > time.monotonic():
            return hit[0]
        return None

    def put(self, scopes, token: str, expires_in) -> None:
        try:
            life = max(int(expires_in or DEFAULT_TOKEN_LIFETIME), 10)
        except (TypeError, ValueError):
            life = DEFAULT_TOKEN_LIFETIME
        with self._lock:
            self._tokens[self.key(scopes)] = (token, time.monotonic() + life - 5)

    def drop(self, scopes) -> None:
        with self._lock:
            self._tokens.pop(self.key(scopes), None)


def decode_registry_config(header: str) -> dict:
    """Decode an ``X-Registry-Config`` header (``docker build``): ``{registry: AuthConfig}``.

    Raises:
        InvalidParameter: the header is not base64 JSON of an object of objects.
    """
    if not header or not header.strip():
        return {}
    raw = header.strip()
    raw += "=" * (-len(raw) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError):
        raise InvalidParameter("invalid X-Registry-Config header: not base64-encoded JSON") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InvalidParameter("invalid X-Registry-Config header: expected {registry: {username, password}}")
    return {k: AuthConfig.from_dict(v) for k, v in data.items()}
