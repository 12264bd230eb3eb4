"""/volumes/…: list, inspect, create, remove, prune."""

from __future__ import annotations

from ...filters import normalize as normalize_filters
from ...errors import InvalidParameter
# api.schema is imported by the handlers that check a body: a start (seconds under emulation) does not need it


def list_volumes(volumes, req, resp):
    return volumes.list(normalize_filters(req.qjson("filters")))


def inspect(volumes, req, resp, name):
    return volumes.inspect(name)


def create(volumes, req, resp):
    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a volume config object is required")
    from .. import schema
    schema.check(body, schema.VOLUME_CREATE, "the volume config")
    resp.json(volumes.create(body.get("Name") or None, body.get("Driver"), body.get("DriverOpts"), body.get("Labels")),
              status=201)


def remove(volumes, req, resp, name):
    volumes.remove(name)


def prune(volumes, req, resp):
    return volumes.prune(normalize_filters(req.qjson("filters")))


def register(r):
    add = r.for_backend("volumes")
    add("GET", "/volumes", list_volumes)
    add("POST", "/volumes/create", create)
    add("POST", "/volumes/prune", prune)
    add("GET", "/volumes/{name}", inspect)
    add("DELETE", "/volumes/{name}", remove)
