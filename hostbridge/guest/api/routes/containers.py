"""/containers/…: create, start, stop, kill, restart, wait, attach, logs, inspect, list, remove."""

from __future__ import annotations

from ...durations import parse_timestamp
from ...errors import InvalidParameter, NotFound
from ...containers import detach
from ...containers import logs as logs_mod
from ..streams import relay
from .system import _client_gone, _client_hung_up
# api.schema is imported by the handlers that check a body: a start (seconds under emulation) does not need it


def _since(text):
    return parse_timestamp(text) if text else 0.0


def list_containers(containers, req, resp):
    return containers.list(all=req.qbool("all"), limit=req.qint("limit", -1), size=req.qbool("size"),
                           filters=req.qjson("filters"))


def create(containers, req, resp):
    body = req.json()
    if body is None:
        raise InvalidParameter("invalid JSON body: config cannot be empty in order to create a container")
    from .. import schema
    schema.check_create(body)
    resp.json(containers.create(body, req.query.get("name"), req.query.get("platform")), status=201)


def inspect(containers, req, resp, id):
    return containers.inspect(id, size=req.qbool("size"))


def start(containers, req, resp, id):
    containers.start(id)


def stop(containers, req, resp, id):
    containers.stop(id, req.qint("t"), req.query.get("signal"))


def restart(containers, req, resp, id):
    containers.restart(id, req.qint("t"), req.query.get("signal"))


def kill(containers, req, resp, id):
    containers.kill(id, req.query.get("signal"))


def remove(containers, req, resp, id):
    containers.remove(id, force=req.qbool("force"), volumes=req.qbool("v"))


def remove_link(containers, req, resp, id, alias):
    # the CLI's ``rm --link /C/ALIAS`` (the leading slash is dropped on the way)
    if not req.qbool("link"):
        raise NotFound("No such container: %s/%s" % (id, alias))
    containers.remove_link(id, alias)


def rename(containers, req, resp, id):
    containers.rename(id, req.query.get("name", ""))


def resize(containers, req, resp, id):
    h, w = req.qint("h", 0), req.qint("w", 0)
    if not (0 <= h <= 0xFFFF and 0 <= w <= 0xFFFF):
        raise InvalidParameter("invalid terminal size %sx%s: h and w must be between 0 and 65535" % (h, w))
    containers.resize(id, h, w)


def wait(containers, req, resp, id):
    # docker run starts the container as soon as these headers arrive: the wait is registered
    # (404 or 400 otherwise) before they go out, so that an exit at once still ends it.
    handle = containers.wait_begin(id, req.query.get("condition") or "not-running")
    resp.start_stream()
    conn = resp.conn
    result = containers.wait_end(handle, stop=lambda: _client_gone(conn))
    if result is not None:
        resp.write_json(result)
    resp.end_stream()


def attach(containers, req, resp, id):
    tty = containers.is_tty(id)
    stdin, stdout, stderr = req.qbool("stdin"), req.qbool("stdout"), req.qbool("stderr")
    want_logs, stream = req.qbool("logs"), req.qbool("stream")
    keys = detach.parse(req.query.get("detachKeys"))  # a bad one is a 400 before the hijack
    containers.attached(id)
    # Registered before the 101 goes out: the client starts the container as soon as it reads it.
    handle = containers.attach_begin(id, stdin, stdout, stderr) if stream else None
    conn = resp.hijack("application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream")
    try:
        if want_logs:
            for batch in containers.logs(id, stdout=stdout, stderr=stderr):
                conn.sendall(logs_mod.render(batch, multiplexed=not tty))
        if handle is None:
            return
        sock = handle
        if not hasattr(handle, "recv"):
            sock = containers.attach_wait(handle, keep_waiting=lambda: not _client_hung_up(conn))
        if sock is not None:
            relay(conn, sock, send_stdin=stdin, detach=detach.Detector(keys))
    except OSError:
        pass
    finally:
        if handle is not None and not hasattr(handle, "recv"):
            containers.attach_cancel(handle)
        try:
            conn.shutdown(2)
        except OSError:
            pass


def logs(containers, req, resp, id):
    stdout, stderr = req.qbool("stdout"), req.qbool("stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tty = containers.is_tty(id)
    tail = req.query.get("tail", "all")
    if tail in ("all", ""):
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise InvalidParameter("invalid value for tail: %r" % tail)
        if tail_n < 0:
            tail_n = None
    timestamps = req.qbool("timestamps")
    conn = resp.conn
    batches = containers.logs(id, stdout=stdout, stderr=stderr, tail=tail_n, since=_since(req.query.get("since")),
                          until=_since(req.query.get("until")), follow=req.qbool("follow"),
                          stop=lambda: _client_gone(conn))
    resp.start_stream(content_type="application/vnd.docker.raw-stream" if tty
                      else "application/vnd.docker.multiplexed-stream")
    for batch in batches:
        resp.write(logs_mod.render(batch, multiplexed=not tty, timestamps=timestamps))
    resp.end_stream()


def prune(containers, req, resp):
    return containers.prune(req.qjson("filters"))


def register(r):
    add = r.for_backend("containers")
    add("GET", "/containers/json", list_containers)
    add("POST", "/containers/create", create)
    add("POST", "/containers/prune", prune)
    add("GET", "/containers/{id}/json", inspect)
    add("POST", "/containers/{id}/start", start)
    add("POST", "/containers/{id}/stop", stop)
    add("POST", "/containers/{id}/restart", restart)
    add("POST", "/containers/{id}/kill", kill)
    add("POST", "/containers/{id}/rename", rename)
    add("POST", "/containers/{id}/resize", resize)
    add("POST", "/containers/{id}/wait", wait)
    add("POST", "/containers/{id}/attach", attach)
    add("GET", "/containers/{id}/logs", logs)
    add("DELETE", "/containers/{id}", remove)
    add("DELETE", "/containers/{id}/{alias}", remove_link)
