"""/networks/…: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from ...filters import normalize as normalize_filters
from ...errors import InvalidParameter
# api.schema is imported by the handlers that check a body: a start (seconds under emulation) does not need it


def list_networks(networks, req, resp):
    return networks.list(normalize_filters(req.qjson("filters")))


def inspect(networks, req, resp, id):
    return networks.inspect(id)


def create(networks, req, resp):
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a network config object is required")
    from .. import schema
    schema.check(body, schema.NETWORK_CREATE, "the network config")
    resp.json(networks.create(body), status=201)


def remove(networks, req, resp, id):
    networks.remove(id)


def connect(networks, req, resp, id):
    from .. import schema
    networks.connect(id, schema.check(req.json({}), schema.NETWORK_CONNECT, "the connect config"))
    resp.send(200, b"", content_type="text/plain; charset=utf-8")


def disconnect(networks, req, resp, id):
    from .. import schema
    networks.disconnect(id, schema.check(req.json({}), schema.NETWORK_CONNECT, "the disconnect config"))
    resp.send(200, b"", content_type="text/plain; charset=utf-8")


def prune(networks, req, resp):
    return networks.prune(normalize_filters(req.qjson("filters")))


def register(r):
    add = r.for_backend("networks")
    add("GET", "/networks", list_networks)
    add("POST", "/networks/create", create)
    add("POST", "/networks/prune", prune)
    add("GET", "/networks/{id}", inspect)
    add("DELETE", "/networks/{id}", remove)
    add("POST", "/networks/{id}/connect", connect)
    add("POST", "/networks/{id}/disconnect", disconnect)
