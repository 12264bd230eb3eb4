"""/volumes/…: list, inspect, create, remove, prune."""

from __future__ import annotations

from .. import schema
from ...filters import normalize as normalize_filters
from ...errors import InvalidParameter


def list_volumes(engine, req, resp):
    v = engine.volumes
    return v.store.list(normalize_filters(req.qjson("filters")), v.in_use())


def inspect(engine, req, resp, name):
    return engine.volumes.store.get(name)


def create(engine, req, resp):
    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a volume config object is required")
    schema.check(body, schema.VOLUME_CREATE, "the volume config")
    vol, created = engine.volumes.store.create(body.get("Name") or None, body.get("Driver"), body.get("DriverOpts"),
                                               body.get("Labels"))
    if created:
        engine.events.emit("volume", "create", vol["Name"], {"driver": "local"})
    resp.json(vol, status=201)


def remove(engine, req, resp, name):
    v = engine.volumes
    v.store.remove(name, v.users(name))
    engine.events.emit("volume", "destroy", name, {"driver": "local"})


def prune(engine, req, resp):
    v = engine.volumes
    out = v.store.prune(normalize_filters(req.qjson("filters")), v.in_use())
    engine.events.emit("volume", "prune", "", {"reclaimed": str(out["SpaceReclaimed"])})
    return out


def register(r):
    r.add("GET", "/volumes", list_volumes)
    r.add("POST", "/volumes/create", create)
    r.add("POST", "/volumes/prune", prune)
    r.add("GET", "/volumes/{name}", inspect)
    r.add("DELETE", "/volumes/{name}", remove)
