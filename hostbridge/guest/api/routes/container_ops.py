"""/containers/{id}/{stats,top,pause,unpause,update,export,changes,archive} and /commit."""

from __future__ import annotations

import contextlib

from ...containers import fs, resources
from .. import schema
from ...errors import InvalidParameter, NotFound
from .system import _client_gone


def stats(engine, req, resp, id):
    c = engine.containers.get(id)
    stream = req.qbool("stream", True)
    conn = resp.conn
    gen = resources.stats(engine.containers, c, stream=stream, one_shot=req.qbool("one-shot"), stop=lambda: _client_gone(conn))
    if not stream:
        return next(gen)
    resp.start_stream()
    for s in gen:
        resp.write_json(s)
    resp.end_stream()


def top(engine, req, resp, id):
    c = engine.containers.get(id)
    return resources.top(engine.containers, c, req.query.get("ps_args", ""), hide=engine.execs.helper_pids(c))


def pause(engine, req, resp, id):
    resources.pause(engine.containers, engine.containers.get(id))


def unpause(engine, req, resp, id):
    resources.unpause(engine.containers, engine.containers.get(id))


def update(engine, req, resp, id):
    body = schema.check(req.json({}), schema.UPDATE, "the update config")
    return resources.update(engine.containers, engine.containers.get(id), body)


def changes(engine, req, resp, id):
    c = engine.containers.get(id)
    spec = engine.containers.rootfs_spec(c)
    if spec["driver"] == "vfs":
        raise InvalidParameter("docker diff is not available with the vfs storage driver")
    # docker sends null for no changes; a 204 would make the CLI fail with "EOF"
    resp.json(fs.changes(spec["upper"], spec["lower"][1:]) or None)


class _ChunkWriter:
    def __init__(self, resp):
        self.resp = resp

    def write(self, data):
        self.resp.write(bytes(data))
        return len(data)

    def flush(self):
        pass


def export(engine, req, resp, id):
    c = engine.containers.get(id)
    with fs.mounted_rootfs(engine.containers, c) as root:
        resp.start_stream(content_type="application/x-tar")
        fs.export_archive(root, _ChunkWriter(resp), engine.containers.remap_of(c))
        resp.end_stream()
    engine.containers._emit(c, "export")


@contextlib.contextmanager
def _naming(ref):
    """docker names the container in cp's "Could not find the file" message."""
    try:
        yield
    except NotFound as e:
        if str(e).startswith("Could not find the file") and str(e).endswith(" in container"):
            raise NotFound("%s %s" % (e, ref))
        raise


def _archive_path(req):
    path = req.query.get("path")
    if not path:
        raise InvalidParameter("path is required")
    return path


def archive_head(engine, req, resp, id):
    c = engine.containers.get(id)
    path = _archive_path(req)
    with fs.mounted_rootfs(engine.containers, c) as root, _naming(id):
        header, _ = fs.path_stat(root, path)
    resp.send(200, b"", headers={"X-Docker-Container-Path-Stat": header})


def archive_get(engine, req, resp, id):
    c = engine.containers.get(id)
    path = _archive_path(req)
    with fs.mounted_rootfs(engine.containers, c) as root:
        with _naming(id):
            header, _ = fs.path_stat(root, path)
        resp.start_stream(content_type="application/x-tar", headers={"X-Docker-Container-Path-Stat": header})
        fs.write_archive(root, path, _ChunkWriter(resp), engine.containers.remap_of(c))
        resp.end_stream()


def archive_put(engine, req, resp, id):
    c = engine.containers.get(id)
    path = _archive_path(req)
    with fs.mounted_rootfs(engine.containers, c, writable=True) as root, _naming(id):
        fs.check_writable(root, c, path)
        fs.extract_archive(root, path, req.body(), req.qbool("noOverwriteDirNonDir"), engine.containers.remap_of(c))
    resp.empty(200)


def commit(engine, req, resp):
    cid = req.query.get("container")
    if not cid:
        raise InvalidParameter("container is required")
    cfg = schema.check(req.json({}), schema.CONFIG, "the commit config")
    repo = req.query.get("repo") or ""
    ref = repo + (":" + req.query["tag"] if repo and req.query.get("tag") else "")
    image_id = engine.commit(cid, ref or None, cfg, req.query.get("comment") or "", req.query.get("author") or "",
                             req.query_all.get("changes") or [], req.qbool("pause", True))
    resp.json({"Id": image_id}, status=201)


def register(r):
    r.add("GET", "/containers/{id}/stats", stats)
    r.add("GET", "/containers/{id}/top", top)
    r.add("POST", "/containers/{id}/pause", pause)
    r.add("POST", "/containers/{id}/unpause", unpause)
    r.add("POST", "/containers/{id}/update", update)
    r.add("GET", "/containers/{id}/changes", changes)
    r.add("GET", "/containers/{id}/export", export)
    r.add("HEAD", "/containers/{id}/archive", archive_head)
    r.add("GET", "/containers/{id}/archive", archive_get)
    r.add("PUT", "/containers/{id}/archive", archive_put)
    r.add("POST", "/commit", commit)
