"""A Registry HTTP API v2 client on ``http.client``: endpoints, auth, redirects, retries, errors.

One ``RegistryClient`` talks to one registry host. It pings ``/v2/`` once to learn the auth
challenge, then sends each request with a Bearer token for the request's scope (fetched from
the challenge's realm and cached per scope) or Basic credentials. Redirects are followed, and
``Authorization`` is never sent to another host (blob downloads redirect to storage).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse

from . import auth as _auth
from .config import RegistryConfig, registry_domain, split_hostport
from .errors import (Denied, RegistryError, RegistryNotFound, RegistryUnavailable, TooManyRequests,
                     Unauthorized)

USER_AGENT = "hostbridge-engine (registry client)"
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


class Response:
    """A response whose body may still be unread. Close it (or use ``with``)."""

    def __init__(self, conn, resp, url):
        self._conn, self._resp, self.url = conn, resp, url
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n=-1) -> bytes:
        return self._resp.read() if n is None or n < 0 else self._resp.read(n)

    def read_limited(self, limit: int) -> bytes:
        """Read the whole body but at most ``limit + 1`` bytes (so callers can refuse bigger)."""
        return self._resp.read(limit + 1)

    def json(self):
        return json.loads(self.read() or b"null")

    def close(self):
        try:
            self._resp.close()
        finally:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ProxyError(OSError):
    """The proxy could not be reached or refused the request (a connection error: retried)."""


class _ProxyConn:
    """A connection to a proxy whose connect errors name the proxy (not the registry)."""

    def __init__(self, conn, proxy):
        self._conn, self._proxy = conn, proxy

    def request(self, *args, **kw):
        try:
            return self._conn.request(*args, **kw)
        except ssl.SSLError:
            raise
        except OSError as e:
            where = "%s:%s" % (self._proxy.hostname, self._proxy.port or 80)
            raise ProxyError("proxy %s: %s" % (where, getattr(e, "strerror", None) or e)) from e

    def __getattr__(self, name):
        return getattr(self._conn, name)


class RegistryClient:
    """HTTP to one registry, authenticated as ``auth`` for the scopes each request names.

    Args:
        domain: the registry as in a reference (``docker.io``, ``localhost:5000``).
        auth: an ``auth.AuthConfig`` (anonymous when None).
        config: a RegistryConfig.
        endpoint: override the base URL (a mirror, Docker Hub's v1 index).
        v2: ping ``/v2/`` before the first request (False for the v1 search index).
    """

    def __init__(self, domain: str, auth=None, config=None, endpoint=None, v2=True):
        self.domain = domain
        self.auth = auth or _auth.AuthConfig()
        self.config = config or RegistryConfig()
        self.base = (endpoint or self.config.endpoint(domain)).rstrip("/")
        self._netloc = urllib.parse.urlsplit(self.base).netloc
        self._tokens = _auth.TokenCache()
        self._challenge = None
        self._pinged = not v2
        self._lock = threading.Lock()
        self._ssl = self.config.ssl_context(domain)

    # ---- transport -------------------------------------------------------------------------
    def _connect(self, url):
        """A connection for ``url``: (connection, whether requests take the absolute URL).

        Through a proxy, https goes in a CONNECT tunnel and http is sent to the proxy whole.
        """
        parts = urllib.parse.urlsplit(url)
        host, port = split_hostport(parts.netloc)
        if parts.scheme not in ("http", "https"):
            raise RegistryError("unsupported URL scheme in %s: use http or https" % url)
        proxy = self.config.proxies.for_url(url)
        headers = {}
        if proxy is not None:
            if proxy.username is not None:
                pair = (urllib.parse.unquote(proxy.username), urllib.parse.unquote(proxy.password or ""))
                headers["Proxy-Authorization"] = _auth.basic_header(*pair)
            phost, pport = proxy.hostname, proxy.port or (443 if proxy.scheme == "https" else 80)
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(phost, pport, timeout=self.config.timeout, context=self._ssl,
                                                   blocksize=1 << 20)
                conn.set_tunnel(host, port or 443, headers=headers)
                return _ProxyConn(conn, proxy), False, {}
            return _ProxyConn(http.client.HTTPConnection(phost, pport, timeout=self.config.timeout,
                                                         blocksize=1 << 20), proxy), True, headers
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.config.timeout,
                                               context=self._ssl, blocksize=1 << 20), False, {}
        return http.client.HTTPConnection(host, port, timeout=self.config.timeout, blocksize=1 << 20), False, {}

    def _send_once(self, method, url, headers, body):
        """One request, following redirects; ``Authorization`` only to the registry's host."""
        origin = urllib.parse.urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            hdrs = dict(headers)
            if parts.netloc != origin:
                hdrs.pop("Authorization", None)
            conn, absolute, proxy_headers = self._connect(url)
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            if absolute:
                target = "%s://%s%s" % (parts.scheme, parts.netloc, target)
            hdrs.update(proxy_headers)
            try:
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
            except BaseException:
                conn.close()
                raise
            if resp.status in _REDIRECTS and resp.headers.get("Location"):
                url = urllib.parse.urljoin(url, resp.headers["Location"])
                resp.close()
                conn.close()
                if resp.status == 303:
                    method, body = "GET", None
                continue
            return Response(conn, resp, url)
        raise RegistryUnavailable("too many redirects from %s: check the registry's configuration"
                                  % self.domain, registry=self.domain)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base + path_or_url

    def request(self, method, path, scopes=(), headers=None, body=None, expect=(200,), what=None):
        """Send a request with auth, retries and redirects; raise on an unexpected status.

        Args:
            method: HTTP method.
            path: ``/v2/...`` (joined to the endpoint) or an absolute URL (upload locations).
            scopes: token scopes, e.g. ``["repository:team/app:pull"]``.
            headers: extra headers.
            body: bytes, a seekable file object (rewound on retry), or None.
            expect: statuses returned to the caller; any other raises.
            what: words naming the object, for error messages (``manifest for app:1.0``).
        Returns:
            A Response (open; the caller reads and closes it).
        Raises:
            Unauthorized, Denied, RegistryNotFound, TooManyRequests, RegistryUnavailable,
            RegistryError for other statuses.
        """
        self.ensure_pinged()
        url = self.url(path)
        refreshed = False
        attempt = 0
        start = body.tell() if hasattr(body, "seek") else None
        while True:
            hdrs = {"User-Agent": USER_AGENT}
            hdrs.update(headers or {})
            authz = self._authorization(scopes)
            if authz:
                hdrs["Authorization"] = authz
            if start is not None:
                body.seek(start)
            try:
                resp = self._send_once(method, url, hdrs, body)
            except (OSError, http.client.HTTPException) as e:
                attempt = self._retry_or_raise(attempt, e)
                continue
            if resp.status == 401 and not refreshed:
                challenge = _auth.parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                resp.close()
                if challenge is None:
                    raise self.error_for(401, what, b"")
                self._challenge = challenge
                self._tokens.drop(scopes)
                refreshed = True
                continue
            if resp.status in expect:
                return resp
            if resp.status >= 500:
                detail = _read_detail(resp)
                attempt = self._retry_or_raise(attempt, "%d %s" % (resp.status, detail or resp._resp.reason))
                continue
            data = resp.read_limited(64 << 10)
            resp.close()
            raise self.error_for(resp.status, what, data)

    def _retry_or_raise(self, attempt, err):
        if isinstance(err, ssl.SSLCertVerificationError):  # retrying cannot help
            raise RegistryUnavailable(
                "the TLS certificate of registry %s is not trusted (%s) — add its CA as %s/%s/ca.crt, or "
                "list it in the insecure registries" % (self.domain, err.verify_message or err,
                                                         self.config.certs_dir or "CERTS_DIR", self.domain),
                registry=self.domain) from err
        if attempt >= self.config.retries and isinstance(err, ProxyError):
            raise RegistryUnavailable(
                "cannot reach registry %s through the %s: check the proxy settings (HTTP(S)_PROXY, NO_PROXY; "
                "`hostbridge config set vm.proxy`)" % (self.domain, err), registry=self.domain) from err
        if attempt >= self.config.retries:
            raise RegistryUnavailable(
                "cannot reach registry %s (%s): check that it is running and reachable, then retry"
                % (self.domain, _short(err)), registry=self.domain) from (err if isinstance(err, BaseException) else None)
        time.sleep(min(self.config.backoff * (2 ** attempt), self.config.max_backoff))
        return attempt + 1

    # ---- auth ------------------------------------------------------------------------------
    def ensure_pinged(self):
        """Ping ``/v2/`` once to learn the auth challenge (docker does the same)."""
        if self._pinged:
            return
        with self._lock:
            if not self._pinged:
                self._challenge = self.ping()
                self._pinged = True

    def ping(self):
        """GET ``/v2/``; return its challenge (None when the registry needs no auth).

        Raises:
            RegistryUnavailable: not a v2 registry, or unreachable after the retries.
        """
        url = self.base + "/v2/"
        attempt = 0
        while True:
            try:
                with self._send_once("GET", url, {"User-Agent": USER_AGENT}, None) as resp:
                    resp.read_limited(64 << 10)
                    if resp.status >= 500:
                        raise http.client.HTTPException("%d from /v2/" % resp.status)
                    if resp.status == 401:
                        return _auth.parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                    if resp.status == 200:
                        return None
                    if resp.status == 429:
                        raise self.error_for(429, "registry", b"")
                    raise RegistryUnavailable(
                        "%s does not look like a v2 registry (GET /v2/ answered %d): check the address"
                        % (self.domain, resp.status), status=resp.status, registry=self.domain)
            except (OSError, http.client.HTTPException) as e:
                attempt = self._retry_or_raise(attempt, e)

    def _authorization(self, scopes):
        ch = self._challenge
        if ch is None:
            return None
        if self.auth.registrytoken:
            return "Bearer " + self.auth.registrytoken
        if ch.scheme == "basic":
            pair = self.auth.basic_pair()
            return _auth.basic_header(*pair) if pair else None
        token = self._tokens.get(scopes)
        if token is None:
            token, expires_in = self.fetch_token(ch, scopes)
            self._tokens.put(scopes, token, expires_in)
        return "Bearer " + token

    def fetch_token(self, challenge, scopes):
        """GET a bearer token from the challenge's realm for ``scopes``.

        Returns:
            (token, expires_in).
        Raises:
            Unauthorized: the token server refused the credentials.
        """
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError("registry %s sent a Bearer challenge without a realm: "
                                "check the registry's auth configuration" % self.domain)
        query = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query.extend(("scope", s) for s in sorted(set(scopes)))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        hdrs = {"User-Agent": USER_AGENT}
        pair = self.auth.basic_pair()
        if pair:
            hdrs["Authorization"] = _auth.basic_header(*pair)
        attempt = 0
        while True:
            try:
                resp = self._send_once("GET", url, hdrs, None)
            except (OSError, http.client.HTTPException) as e:
                attempt = self._retry_or_raise(attempt, e)
                continue
            with resp:
                data = resp.read_limited(1 << 20)
                if resp.status >= 500:
                    attempt = self._retry_or_raise(attempt, "token server answered %d" % resp.status)
                    continue
                if resp.status != 200:
                    raise self.error_for(resp.status, "token", data)
            try:
                doc = json.loads(data)
                token = doc.get("token") or doc.get("access_token")
            except (ValueError, AttributeError):
                token, doc = None, {}
            if not token:
                raise RegistryError("the token server of %s sent no token: check its auth configuration"
                                    % self.domain, registry=self.domain)
            return token, doc.get("expires_in")

    # ---- errors ----------------------------------------------------------------------------
    def error_for(self, status, what, body):
        """The one-line error for an unexpected status (``body``: the registry's error JSON)."""
        what = what or "request"
        detail = _detail_from(body)
        reg = self.domain
        if status == 401:
            bearer = self._challenge is not None and self._challenge.scheme == "bearer"
            if what not in ("token", "login") and bearer and not self.auth.anonymous:
                # The token server took the credentials; the token just lacks this access.
                msg = ("unauthorized: %s is not granted to %s on %s%s — check the repository name and "
                       "your permissions, or `hostbridge login %s` as another user"
                       % (what, self.auth.username or "this login", reg, _paren(detail), reg))
            elif what == "token" or not self.auth.anonymous:
                msg = ("unauthorized: incorrect username or password for %s — run `hostbridge login %s` "
                       "with the right credentials" % (reg, reg))
            else:
                msg = ("unauthorized: authentication required for %s (%s) — run `hostbridge login %s`"
                       % (reg, what, reg))
            return Unauthorized(msg, status=401, registry=reg)
        if status == 403:
            return Denied("denied: access to %s on %s is forbidden%s — check the repository name and "
                          "your permissions, or `hostbridge login %s` as another user"
                          % (what, reg, _paren(detail), reg), status=403, registry=reg)
        if status == 404:
            return RegistryNotFound("%s not found on %s%s — check the name, tag or digest"
                                    % (what, reg, _paren(detail)), status=404, registry=reg,
                                    codes=_codes_from(body))
        if status == 429:
            return TooManyRequests("toomanyrequests: %s rate limit reached — wait and retry later, or "
                                   "`hostbridge login %s` for a higher limit" % (reg, reg),
                                   status=429, registry=reg)
        return RegistryError("registry %s answered %d for %s%s — check the request and the registry's logs"
                             % (reg, status, what, _paren(detail)), status=status, registry=reg)


def _detail_from(body):
    try:
        errs = json.loads(body or b"{}").get("errors") or []
        return "; ".join("%s: %s" % (e.get("code", ""), e.get("message", "")) for e in errs)[:300]
    except (ValueError, AttributeError):
        return ""


def _codes_from(body):
    try:
        return [str(e.get("code", "")) for e in json.loads(body or b"{}").get("errors") or []]
    except (ValueError, AttributeError):
        return []


def _read_detail(resp):
    try:
        return _detail_from(resp.read_limited(64 << 10))
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        resp.close()


def _paren(detail):
    return " (%s)" % detail if detail else ""


def _short(err):
    if isinstance(err, socket.timeout):
        return "timed out"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    return str(err) or err.__class__.__name__


def login(auth, config=None) -> dict:
    """Check credentials against a registry (``POST /auth``), as dockerd does.

    Args:
        auth: an AuthConfig; ``serveraddress`` names the registry (empty: Docker Hub).
        config: a RegistryConfig.
    Returns:
        docker's AuthResponse: ``{"Status": "Login Succeeded", "IdentityToken": ""}``.
    Raises:
        Unauthorized: wrong credentials; RegistryUnavailable: unreachable.
    """
    domain = registry_domain(auth.serveraddress)
    client = RegistryClient(domain, auth, config)
    challenge = client.ping()
    client._challenge, client._pinged = challenge, True
    if challenge is not None:
        if challenge.scheme == "basic" and auth.anonymous:
            raise client.error_for(401, "login", b"")
        # A scope-less token (bearer) or Basic credentials must then open /v2/.
        with client.request("GET", "/v2/", [], what="login") as resp:
            resp.read()
    return {"Status": "Login Succeeded", "IdentityToken": ""}
