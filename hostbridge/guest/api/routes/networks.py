"""/networks/…: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from .. import schema
from ...filters import normalize as normalize_filters
from ...errors import InvalidParameter


def list_networks(engine, req, resp):
    return engine.network.list(normalize_filters(req.qjson("filters")))


def inspect(engine, req, resp, id):
    return engine.network.inspect(id)


def create(engine, req, resp):
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a network config object is required")
    schema.check(body, schema.NETWORK_CREATE, "the network config")
    out = engine.network.create_network(body)
    engine.events.emit("network", "create", out["Id"], {"name": body["Name"], "type": body.get("Driver") or "bridge"})
    resp.json(out, status=201)


def remove(engine, req, resp, id):
    rec = engine.network.remove_network(id)
    engine.events.emit("network", "destroy", rec["Id"], {"name": rec["Name"], "type": rec["Driver"]})


def connect(engine, req, resp, id):
    engine.network.connect(id, schema.check(req.json({}), schema.NETWORK_CONNECT, "the connect config"))
    resp.send(200, b"", content_type="text/plain; charset=utf-8")


def disconnect(engine, req, resp, id):
    engine.network.disconnect(id, schema.check(req.json({}), schema.NETWORK_CONNECT, "the disconnect config"))
    resp.send(200, b"", content_type="text/plain; charset=utf-8")


def prune(engine, req, resp):
    out = engine.network.prune(normalize_filters(req.qjson("filters")))
    engine.events.emit("network", "prune", "", {})
    return out


def register(r):
    r.add("GET", "/networks", list_networks)
    r.add("POST", "/networks/create", create)
    r.add("POST", "/networks/prune", prune)
    r.add("GET", "/networks/{id}", inspect)
    r.add("DELETE", "/networks/{id}", remove)
    r.add("POST", "/networks/{id}/connect", connect)
    r.add("POST", "/networks/{id}/disconnect", disconnect)
