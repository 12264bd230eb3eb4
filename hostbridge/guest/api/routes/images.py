"""/images/…: list, inspect, history, tag, delete, import, load, save, prune, and the registry's
pull (``create?fromImage``), push and search."""

from __future__ import annotations

from ...errors import InvalidParameter
from ...registry.progress import ProgressAborted
from ..streams import ChunkWriter, JsonLines


def list_images(images, req, resp):
    return images.list(all=req.qbool("all"), filters=req.qjson("filters"))


def inspect(images, req, resp, name):
    return images.inspect(name)


def history(images, req, resp, name):
    return images.history(name)


def tag(images, req, resp, name):
    repo = req.query.get("repo")
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    images.tag(name, repo + (":" + req.query["tag"] if req.query.get("tag") else ""))
    resp.empty(201)


def delete(images, req, resp, name):
    return images.delete(name, force=req.qbool("force"), prune=not req.qbool("noprune"))


def create(images, req, resp):
    """``fromSrc`` imports a rootfs tar (``-`` = the body); ``fromImage`` pulls."""
    src = req.query.get("fromSrc")
    if src is not None:
        if src != "-":
            raise InvalidParameter("importing from a URL is not supported: send the tar as the body (fromSrc=-)")
        repo = req.query.get("repo") or ""
        if repo and req.query.get("tag"):
            repo += ":" + req.query["tag"]
        changes = req.query_all.get("changes") or []
        image_id = images.import_rootfs(req.body(), repo or None, changes, req.query.get("message") or "")
        resp.start_stream()
        resp.write_json({"status": image_id})
        resp.end_stream()
        return
    if req.query.get("fromImage"):
        _progress(resp, lambda send: images.pull(req.query.get("fromImage", ""), req.query.get("tag", ""),
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


def load(images, req, resp):
    # dockerd answers 200 first and streams a bad archive's error: the SDK raises ImageLoadError
    # from that message (a 400 would be a plain APIError)
    resp.start_stream()
    for line in images.load(req.body()):
        resp.write_json({"stream": line.rstrip("\n") + "\n"})
    resp.end_stream()


def _save(images, resp, names):
    if not names:
        raise InvalidParameter("no image names given")
    images.save(names, ChunkWriter(resp), lambda: resp.start_stream(content_type="application/x-tar"))
    resp.end_stream()


def save_one(images, req, resp, name):
    _save(images, resp, [name])


def save_many(images, req, resp):
    _save(images, resp, req.query_all.get("names") or [])


def prune(images, req, resp):
    return images.prune(req.qjson("filters"))


def push(images, req, resp, name):
    _progress(resp, lambda send: images.push(name, req.query.get("tag", ""), req.headers.get("x-registry-auth", ""),
                                             send))


def search(images, req, resp):
    term = req.query.get("term", "")
    limit = req.qint("limit")
    if limit is not None and not 1 <= limit <= 100:  # dockerd's check, before any registry is asked
        raise InvalidParameter("Limit %d is outside the range of [1, 100]" % limit)
    return images.search(term, limit, req.qjson("filters"), req.headers.get("x-registry-auth", ""), req.qbool("tags"))


def distribution(images, req, resp, name):
    return images.distribution(name, req.headers.get("x-registry-auth", ""))


def register(r):
    add = r.for_backend("images")
    add("GET", "/distribution/{name*}/json", distribution)
    add("GET", "/images/json", list_images)
    add("POST", "/images/create", create)
    add("POST", "/images/load", load)
    add("GET", "/images/get", save_many)
    add("POST", "/images/prune", prune)
    add("GET", "/images/search", search)
    add("POST", "/images/{name*}/push", push)
    add("GET", "/images/{name*}/json", inspect)
    add("GET", "/images/{name*}/history", history)
    add("GET", "/images/{name*}/get", save_one)
    add("POST", "/images/{name*}/tag", tag)
    add("DELETE", "/images/{name*}", delete)
