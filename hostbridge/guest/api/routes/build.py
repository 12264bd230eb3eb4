"""POST /build (the classic builder), /build/prune."""

from __future__ import annotations

import os

from ..streams import JsonLines


def build(engine, req, resp):
    from ...builder.request import connection_closed, handle_build  # the builder loads on first use

    backend = engine.build_backend()
    send = JsonLines(resp)

    from ...registry.auth import decode_registry_config

    configs = decode_registry_config(req.headers.get("x-registry-config", ""))
    engine.build_with_auth(configs, lambda: handle_build(
        backend, req.query_all, req.body(), send, tmp_parent=os.path.join(engine.root, "builder"),
        cancelled=connection_closed(resp.conn)))
    send.finish()


def prune(engine, req, resp):
    return {"CachesDeleted": None, "SpaceReclaimed": 0}


def register(r):
    r.add("POST", "/build", build)
    r.add("POST", "/build/prune", prune)
