"""/containers/{id}/{stats,top,pause,unpause,update,export,changes,archive} and /commit."""

from __future__ import annotations

from ...errors import InvalidParameter
from ..streams import ChunkWriter
from .system import _client_gone
# api.schema is imported by the handlers that check a body: a start (seconds under emulation) does not need it


def stats(containers, req, resp, id):
    stream = req.qbool("stream", True)
    conn = resp.conn
    gen = containers.stats(id, stream, req.qbool("one-shot"), stop=lambda: _client_gone(conn))
    if not stream:
        return next(gen)
    resp.start_stream()
    for s in gen:
        resp.write_json(s)
    resp.end_stream()


def top(containers, req, resp, id):
    return containers.top(id, req.query.get("ps_args", ""))


def pause(containers, req, resp, id):
    containers.pause(id)


def unpause(containers, req, resp, id):
    containers.unpause(id)


def update(containers, req, resp, id):
    from .. import schema
    body = schema.check(req.json({}), schema.UPDATE, "the update config")
    return containers.update(id, body)


def changes(containers, req, resp, id):
    # docker sends null for no changes; a 204 would make the CLI fail with "EOF"
    resp.json(containers.changes(id) or None)


def _tar_stream(resp, headers=None):
    resp.start_stream(content_type="application/x-tar", headers=headers)
    return ChunkWriter(resp)


def export(containers, req, resp, id):
    containers.export(id, lambda: _tar_stream(resp))
    resp.end_stream()


def _archive_path(req):
    path = req.query.get("path")
    if not path:
        raise InvalidParameter("path is required")
    return path


def archive_head(containers, req, resp, id):
    header = containers.archive_stat(id, _archive_path(req))
    resp.send(200, b"", headers={"X-Docker-Container-Path-Stat": header})


def archive_get(containers, req, resp, id):
    containers.archive_get(id, _archive_path(req),
                           lambda header: _tar_stream(resp, {"X-Docker-Container-Path-Stat": header}))
    resp.end_stream()


def archive_put(containers, req, resp, id):
    containers.archive_put(id, _archive_path(req), req.body(), req.qbool("noOverwriteDirNonDir"))
    resp.empty(200)


def commit(containers, req, resp):
    cid = req.query.get("container")
    if not cid:
        raise InvalidParameter("container is required")
    from .. import schema
    cfg = schema.check(req.json({}), schema.CONFIG, "the commit config")
    repo = req.query.get("repo") or ""
    ref = repo + (":" + req.query["tag"] if repo and req.query.get("tag") else "")
    image_id = containers.commit(cid, ref or None, cfg, req.query.get("comment") or "", req.query.get("author") or "",
                                 req.query_all.get("changes") or [], req.qbool("pause", True))
    resp.json({"Id": image_id}, status=201)


def register(r):
    add = r.for_backend("containers")
    add("GET", "/containers/{id}/stats", stats)
    add("GET", "/containers/{id}/top", top)
    add("POST", "/containers/{id}/pause", pause)
    add("POST", "/containers/{id}/unpause", unpause)
    add("POST", "/containers/{id}/update", update)
    add("GET", "/containers/{id}/changes", changes)
    add("GET", "/containers/{id}/export", export)
    add("HEAD", "/containers/{id}/archive", archive_head)
    add("GET", "/containers/{id}/archive", archive_get)
    add("PUT", "/containers/{id}/archive", archive_put)
    add("POST", "/commit", commit)
