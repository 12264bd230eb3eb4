"""/_ping, /version, /info, /events."""

from __future__ import annotations

from ... import versioninfo


def ping(engine, req, resp):
    h = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
         "Swarm": "inactive"}
    resp.send(200, b"OK", content_type="text/plain; charset=utf-8", headers=h)


def version(engine, req, resp):
    return versioninfo.version()  # the engine is not needed: answered while it starts


def info(engine, req, resp):
    return engine.info()


def _time_ns(text):
    from ...durations import parse_timestamp  # not at import: this module answers /_ping while the engine starts
    return int(parse_timestamp(text) * 1e9) if text else None


def _event_matches(ev, f):
    if "type" in f and ev["Type"] not in f["type"]:
        return False
    if "event" in f and ev["Action"].split(":")[0] not in f["event"]:
        return False
    attrs = ev["Actor"]["Attributes"]
    if "container" in f:
        if ev["Type"] != "container" or not any(ev["Actor"]["ID"].startswith(x) or attrs.get("name") == x
                                                for x in f["container"]):
            return False
    if "image" in f and not any(attrs.get("image") == x or ev["Actor"]["ID"] == x for x in f["image"]):
        return False
    from ...filters import label_match
    return label_match(attrs, f.get("label"))


def events(engine, req, resp):
    from ...filters import normalize as normalize_filters
    f = normalize_filters(req.qjson("filters"))
    since = _time_ns(req.query.get("since"))
    until = _time_ns(req.query.get("until"))
    resp.start_stream()
    conn = resp.conn
    gone = lambda: _client_gone(conn)  # noqa: E731
    for ev in engine.events.subscribe(since, until, stop=gone):
        if _event_matches(ev, f):
            resp.write_json(ev)
    resp.end_stream()


def _client_hung_up(conn):
    """True once the peer closed the connection entirely. A hijacked client may half-close
    (no stdin) and still read output, so EOF alone does not mean it is gone."""
    import select
    try:
        p = select.poll()
        p.register(conn, select.POLLHUP)
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
    except (OSError, ValueError):
        return True


def _client_gone(conn):
    import select
    import socket
    try:
        # poll, not select: select() refuses descriptors past 1024 (ValueError), which a busy
        # engine reaches, and the stream would die with a 500 instead of noticing the client
        p = select.poll()
        p.register(conn, select.POLLIN | select.POLLHUP)
        events = p.poll(0)
        if any(ev & (select.POLLERR | select.POLLNVAL) for _, ev in events):
            return True
        if events:
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True
    return False


def auth(engine, req, resp):
    body = req.json({}) or {}
    return engine.auth(body)


def disk_usage(engine, req, resp):
    return engine.disk_usage()


def register(r):
    r.add("GET", "/system/df", disk_usage)
    r.add("GET", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/events", events)
    r.add("POST", "/auth", auth)
