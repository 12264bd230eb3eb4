"""/swarm, /services, /nodes, /tasks, /secrets, /configs: answered as a dockerd outside a swarm.

hostbridge runs no swarm. Clients still call these endpoints (``docker info``-driven tools, the
SDK's ``leave_swarm(force=True)`` in a suite's teardown), and they expect dockerd's 503 answers,
not a 404 that makes them raise.
"""

from __future__ import annotations

from ...errors import NOT_SWARM_MANAGER, Unavailable
NOT_IN_SWARM = "This node is not part of a swarm"


def not_manager(engine, req, resp, **_):
    """Every manager-only endpoint: 503, as dockerd answers when it is not in a swarm."""
    raise Unavailable(NOT_SWARM_MANAGER)


def not_in_swarm(engine, req, resp, **_):
    """``POST /swarm/leave``: dockerd's answer outside a swarm."""
    raise Unavailable(NOT_IN_SWARM)


def init_refused(engine, req, resp, **_):
    """``POST /swarm/init`` and ``/swarm/join``: hostbridge's engine cannot become a swarm node."""
    raise Unavailable("hostbridge's engine does not run swarm mode; "
                      "use a dockerd for swarm services")


def register(r):
    r.add("POST", "/swarm/leave", not_in_swarm)
    r.add("POST", "/swarm/init", init_refused)
    r.add("POST", "/swarm/join", init_refused)
    for method, pattern in (("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"), ("POST", "/swarm/update"),
                            ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
                            ("POST", "/services/{id}/update"), ("DELETE", "/services/{id}"),
                            ("GET", "/services/{id}/logs"), ("GET", "/nodes"), ("GET", "/nodes/{id}"),
                            ("POST", "/nodes/{id}/update"), ("DELETE", "/nodes/{id}"), ("GET", "/tasks"),
                            ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"), ("GET", "/secrets"),
                            ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
                            ("POST", "/secrets/{id}/update"), ("DELETE", "/secrets/{id}"), ("GET", "/configs"),
                            ("POST", "/configs/create"), ("GET", "/configs/{id}"),
                            ("POST", "/configs/{id}/update"), ("DELETE", "/configs/{id}")):
        r.add(method, pattern, not_manager)
