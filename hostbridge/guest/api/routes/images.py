"""/images/…: list, inspect, history, tag, delete, import, load, save, prune, and the registry's
pull (``create?fromImage``), push and search."""

from __future__ import annotations

from ...errors import InvalidParameter
from ...images import reference
from ...registry.progress import ProgressAborted
from ..streams import JsonLines


def list_images(engine, req, resp):
    return engine.images.list(all=req.qbool("all"), filters=req.qjson("filters"))


def inspect(engine, req, resp, name):
    return engine.images.inspect(engine.images.resolve(name))


def history(engine, req, resp, name):
    return engine.images.history(engine.images.resolve(name))


def tag(engine, req, resp, name):
    repo = req.query.get("repo")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    ref = repo + (":" + req.query["tag"] if req.query.get("tag") else "")
    engine.images.tag(engine.images.resolve(name), ref)
    # the event names the tag as dockerd's does, familiar (the CLI sends docker.io/…)
    engine.events.emit("image", "tag", engine.images.resolve(name),
                       {"name": reference.parse_normalized(ref).familiar()})
    resp.empty(201)


def delete(engine, req, resp, name):
    return engine.delete_image(name, force=req.qbool("force"), prune=not req.qbool("noprune"))


def create(engine, req, resp):
    """``fromSrc`` imports a rootfs tar (``-`` = the body); ``fromImage`` pulls."""
    src = req.query.get("fromSrc")
    if src is not None:
        if src != "-":
            raise InvalidParameter("importing from a URL is not supported: send the tar as the body (fromSrc=-)")
        repo = req.query.get("repo") or ""
        if repo and req.query.get("tag"):
            repo += ":" + req.query["tag"]
        changes = req.query_all.get("changes") or []
        image_id = engine.images.import_rootfs(req.body(), repo or None, changes, req.query.get("message") or "")
        resp.start_stream()
        resp.write_json({"status": image_id})
        resp.end_stream()
        return
    if req.query.get("fromImage"):
        _progress(resp, lambda send: engine.pull(req.query.get("fromImage", ""), req.query.get("tag", ""),
                                                 req.query.get("platform") or None,
                                                 req.headers.get("x-registry-auth", ""), send))
        return
    raise InvalidParameter("either fromSrc or fromImage is required")


def _progress(resp, run):
    """``run(send)`` with a JSON-lines ``send``; a client gone mid-stream ends the connection."""
    out = JsonLines(resp)
    try:
        run(out)
    except ProgressAborted:
        resp.close_after = True  # nothing more to say to it
        return
    out.finish()


def load(engine, req, resp):
    quiet = req.qbool("quiet")
    # dockerd answers 200 first and streams a bad archive's error: the SDK raises ImageLoadError
    # from that message (a 400 would be a plain APIError)
    resp.start_stream()
    names = engine.images.load(req.body())
    for line in names:
        resp.write_json({"stream": line.rstrip("\n") + "\n"})
    resp.end_stream()
    _ = quiet


def _save(engine, resp, names):
    if not names:
        raise InvalidParameter("no image names given")
    ids = [engine.images.resolve(n) for n in names]  # 404 before the headers
    _ = ids
    resp.start_stream(content_type="application/x-tar")

    class _Out:
        def write(self, data):
            resp.write(bytes(data))
            return len(data)

        def flush(self):
            pass

    engine.images.save(names, _Out())
    resp.end_stream()


def save_one(engine, req, resp, name):
    _save(engine, resp, [name])


def save_many(engine, req, resp):
    _save(engine, resp, req.query_all.get("names") or [])


def prune(engine, req, resp):
    return engine.prune_images(req.qjson("filters"))


def push(engine, req, resp, name):
    _progress(resp, lambda send: engine.push(name, req.query.get("tag", ""), req.headers.get("x-registry-auth", ""),
                                             send))


def search(engine, req, resp):
    term = req.query.get("term", "")
    limit = req.qint("limit")
    if limit is not None and not 1 <= limit <= 100:  # dockerd's check, before any registry is asked
        raise InvalidParameter("Limit %d is outside the range of [1, 100]" % limit)
    return engine.search(term, limit=limit, filters=req.qjson("filters"),
                         auth_header=req.headers.get("x-registry-auth", ""), with_tags=req.qbool("tags"))


def distribution(engine, req, resp, name):
    return engine.distribution(name, auth_header=req.headers.get("x-registry-auth", ""))


def register(r):
    r.add("GET", "/distribution/{name*}/json", distribution)
    r.add("GET", "/images/json", list_images)
    r.add("POST", "/images/create", create)
    r.add("POST", "/images/load", load)
    r.add("GET", "/images/get", save_many)
    r.add("POST", "/images/prune", prune)
    r.add("GET", "/images/search", search)
    r.add("POST", "/images/{name*}/push", push)
    r.add("GET", "/images/{name*}/json", inspect)
    r.add("GET", "/images/{name*}/history", history)
    r.add("GET", "/images/{name*}/get", save_one)
    r.add("POST", "/images/{name*}/tag", tag)
    r.add("DELETE", "/images/{name*}", delete)
