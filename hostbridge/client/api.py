"""The API client's base: one transport to one engine endpoint, and error mapping.

Resources (containers, images, system) are mixins over this base, as in docker-py; ``APIClient``
combines them.
"""

from __future__ import annotations

import json
import socket

from ..errors import APIError, EngineUnreachable, api_error_from
from .endpoint import Endpoint, parse_endpoint, unreachable
from .transport import Transport, quote, urlencode

USER_AGENT = "hostbridge"


def _params(params):
    """Encode query parameters: a dict, or ``(key, value)`` pairs for keys the API repeats.

    The engine reads booleans as "1"/"0" (as the docker CLI sends them); ``None`` means "omit";
    dicts and lists (filters) are JSON-encoded.
    """
    items = params.items() if isinstance(params, dict) else (params or ())
    out = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, bool):
            v = "1" if v else "0"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        out.append((k, v))
    return out


class BaseClient:
    """A session bound to one engine endpoint.

    Args:
        endpoint: an ``Endpoint`` or its URL (``unix:///…``, ``tcp://127.0.0.1:N``).
        timeout: seconds for connect and each read of non-streaming calls.
    """

    def __init__(self, endpoint, timeout=60):
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        self.timeout = timeout
        self.base_url = self.endpoint.base_url
        self._transport = Transport(self.endpoint, timeout)

    def close(self):
        """Close the kept-alive connection."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _target(path, args, params):
        target = path.format(*[quote(a) for a in args])
        q = _params(params)
        return target + ("?" + urlencode(q) if q else "")

    def _request(self, method, path, *args, params=None, json_body=None, data=None, headers=None,
                 stream=False, timeout=False):
        """Send one request; map connection failures and error statuses to hostbridge errors.

        Args:
            method, path, args: ``path`` is a format string; ``args`` are quoted into it.
            params: query parameters (bools as 1/0, dicts/lists JSON-encoded, None dropped).
            json_body: a JSON body.
            data: a raw body (bytes, a file, or an iterator of bytes for chunked upload).
            stream: leave the body unread (streams).
            timeout: seconds, ``None`` for no timeout, ``False`` for the client's default.
        Returns:
            The ``transport.Response`` (status < 400).
        Raises:
            EngineUnreachable: nothing answers on the endpoint.
            APIError: the engine answered with an error status.
        """
        h = {"User-Agent": USER_AGENT}
        h.update(headers or {})
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        try:
            resp = self._transport.request(method, self._target(path, args, params), body=body, headers=h,
                                           stream=stream, timeout=self.timeout if timeout is False else timeout)
        except socket.timeout:
            raise EngineUnreachable("the engine at %s did not answer %s %s within %gs" % (
                self.endpoint.url, method, path.format(*args), self.timeout),
                hint="raise the limit with `hostbridge config set timeout 120`")
        except ValueError as e:
            raise APIError("the engine at %s sent a malformed reply: %s" % (self.endpoint.url, e))
        except OSError as e:
            raise unreachable(self.endpoint, e)
        raise_for_status(resp)
        return resp

    def _get(self, path, *args, **kw):
        return self._request("GET", path, *args, **kw)

    def _post(self, path, *args, **kw):
        return self._request("POST", path, *args, **kw)

    def _delete(self, path, *args, **kw):
        return self._request("DELETE", path, *args, **kw)

    def _json(self, resp):
        """The decoded JSON body (``None`` when empty)."""
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise APIError("the engine sent a malformed reply: %r" % resp.content[:200],
                           status_code=resp.status_code)


def raise_for_status(resp):
    """Raise the ``APIError`` subclass matching an error reply; return quietly otherwise.

    Raises:
        APIError: (``NotFound``, ``Conflict``, …) with the engine's ``message``.
    """
    if resp.status_code < 400:
        return
    message = ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            message = body.get("message", "")
    except ValueError:
        message = resp.text.strip()
    raise api_error_from(resp.status_code, message or "HTTP %d %s" % (resp.status_code, resp.reason))
