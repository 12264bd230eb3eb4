"""/plugins: answered as a dockerd with no managed plugins installed.

hostbridge's engine has no plugin system (its volume, network and log drivers are built in);
clients that list plugins (``docker info``-style tools, the SDK's ``plugins.list()``) get
dockerd's empty answers, and a named plugin is not found in dockerd's words.
"""

from __future__ import annotations

from ...errors import InvalidParameter, NotFound


def list_plugins(engine, req, resp):
    return []


def privileges(engine, req, resp):
    if not req.query.get("remote"):
        raise InvalidParameter("remote is required")
    return []


def not_found(engine, req, resp, name, **_):
    raise NotFound('plugin "%s" not found' % name)


def register(r):
    r.add("GET", "/plugins", list_plugins)
    r.add("GET", "/plugins/privileges", privileges)
    for method, pattern in (("GET", "/plugins/{name}/json"), ("DELETE", "/plugins/{name}"),
                            ("POST", "/plugins/{name}/enable"), ("POST", "/plugins/{name}/disable"),
                            ("POST", "/plugins/{name}/upgrade"), ("POST", "/plugins/{name}/push"),
                            ("POST", "/plugins/{name}/set")):
        r.add(method, pattern, not_found)
