"""Bad input against the real engine over raw unix sockets: malformed HTTP, wrong JSON types, hostile
query strings, never-ending bodies, floods of connections and clients that leave mid-stream.

The rule under test: a clear one-line 4xx naming what was wrong (never a 500, never a traceback),
and afterwards an engine that still answers /_ping with no thread left stuck.
"""

import json
import os
import select
import socket
import threading
import time

import pytest

from hostbridge.guest.api.http import MAX_HEADER_LINE, MAX_JSON_BODY
from hostbridge.guest.api.server import APIServer, Router

pytestmark = pytest.mark.root


# -- raw socket helpers ---------------------------------------------------------------------------

def connect(engine, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(engine.sock)
    return s


def read_all(s, limit=1 << 22):
    """Everything until the peer closes (or the socket's timeout, which fails the test)."""
    out = b""
    while len(out) < limit:
        d = s.recv(65536)
        if not d:
            break
        out += d
    return out


def exchange(engine, data, timeout=10):
    """Send ``data``, half-close, and return all the engine answered."""
    with connect(engine, timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return read_all(s)


def parse(raw):
    """(status, body as JSON or bytes) of the first response in ``raw``."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:])}
    n = int(headers.get("content-length", len(rest)))
    body = rest[:n]
    if headers.get("content-type", "").startswith("application/json") and body:
        body = json.loads(body)
    return status, body


def assert_clean_4xx(status, body, *words):
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict), body
    msg = body.get("message", "")
    assert msg and "\n" not in msg.strip() and "Traceback" not in msg and "internal error" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def thread_count(engine):
    return len(os.listdir("/proc/%d/task" % engine.proc.pid))


def settle_threads(engine, baseline, slack=4, timeout=15):
    """Wait (bounded) for the engine's threads to come back near ``baseline``; return the count."""
    end = time.monotonic() + timeout
    n = thread_count(engine)
    while n > baseline + slack and time.monotonic() < end:
        time.sleep(0.2)
        n = thread_count(engine)
    return n


@pytest.fixture
def healthy(engine):
    """Check after the test that the engine answers /_ping quickly and kept no extra threads."""
    baseline = thread_count(engine)
    yield engine
    t = time.monotonic()
    status, body = engine.request("GET", "/_ping", timeout=5)
    assert status == 200 and body == b"OK"
    assert time.monotonic() - t < 5
    assert engine.proc.poll() is None, "the engine died"
    n = settle_threads(engine, baseline)
    assert n <= baseline + 4, "engine threads grew from %d to %d" % (baseline, n)


# -- malformed HTTP ---------------------------------------------------------------------------------

MALFORMED = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400, "request line"),
    "missing version": (b"GET /_ping\r\n\r\n", 400, "request line"),
    "binary request line": (b"\xff\xfe\x00\x01\r\n\r\n", 400, "request line"),
    "bad version": (b"GET /_ping HTTX/1.1\r\n\r\n", 400, "version"),
    "http/2 version": (b"GET /_ping HTTP/2.0\r\n\r\n", 505, "HTTP/2.0"),
    "huge header line": (b"GET /_ping HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEADER_LINE + 10) + b"\r\n\r\n", 431,
                         "longer than"),
    "too many headers": (b"GET /_ping HTTP/1.1\r\n" + b"X-A: b\r\n" * 500 + b"\r\n", 431, "too many"),
    "header without colon": (b"GET /_ping HTTP/1.1\r\nno colon here\r\n\r\n", 400, "header"),
    "negative content-length": (b"POST /containers/create HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}", 400,
                                "Content-Length"),
    "non-numeric content-length": (b"POST /containers/create HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400,
                                   "Content-Length"),
    "huge content-length": (b"POST /containers/create HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n"
                            b"Content-Type: application/json\r\n\r\n{}", 400, "Image"),
    "negative chunk size": (b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n{}",
                            400, "chunk"),
    "0x chunk size": (b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
                      400, "chunk"),
    "non-hex chunk size": (b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                           "chunk"),
    "truncated chunked body": (b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{",
                               400, "truncated"),
    "unknown method": (b"BREW /_ping HTTP/1.1\r\n\r\n", 404, "page not found"),  # as dockerd
    "two content-lengths": (b"POST /containers/create HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
                            400, "Content-Length"),
    "gzip transfer-encoding": (b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                               501, "transfer encoding"),
    "absurd url": (b"GET /" + b"a" * (MAX_HEADER_LINE + 1) + b" HTTP/1.1\r\n\r\n", 431, "longer than"),
    "long url": (b"GET /containers/" + b"a" * 60000 + b"/json HTTP/1.1\r\n\r\n", 404, "No such container"),
    "dotdot in id": (b"GET /containers/..%2F..%2F..%2Fetc%2Fpasswd/json HTTP/1.1\r\n\r\n", 404, ""),
    "dotdot in image name": (b"GET /images/..%2F..%2Fetc%2Fshadow/json HTTP/1.1\r\n\r\n", 400, ""),
    "dotdot in volume name": (b"GET /volumes/..%2F..%2Fetc HTTP/1.1\r\n\r\n", 404, ""),
    "nul in path": (b"GET /containers/a%00b/json HTTP/1.1\r\n\r\n", 400, "NUL"),
    "nul in query": (b"GET /containers/json?filters=%00 HTTP/1.1\r\n\r\n", 400, "NUL"),
    "bad percent-encoding": (b"GET /images/%ff%fe/json HTTP/1.1\r\n\r\n", 400, ""),
    "bad api version": (b"GET /v99999999999999999999.1/_ping HTTP/1.1\r\n\r\n", 400, "too new"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_http_gets_a_clean_error(healthy, name):
    data, want, word = MALFORMED[name]
    t = time.monotonic()
    status, body = parse(exchange(healthy, data))
    assert time.monotonic() - t < 5
    assert status == want, (status, body)
    assert_clean_4xx(status if status < 500 else 400, body, word)


def test_pipelined_requests_are_answered_in_order(healthy):
    raw = exchange(healthy, b"GET /_ping HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\n\r\n"
                            b"GET /nope HTTP/1.1\r\n\r\n")
    assert raw.count(b"HTTP/1.1 ") == 3
    first, second, third = raw.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and first.endswith(b"OK")
    assert second.startswith(b"200") and b'"ApiVersion"' in second
    assert third.startswith(b"404")


def test_http10_gets_one_answer_and_a_close(healthy):
    with connect(healthy) as s:
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")  # no half-close: the engine must close by itself
        raw = read_all(s)
    assert raw.startswith(b"HTTP/1.1 200") and b"Connection: close" in raw and raw.endswith(b"OK")


def test_bad_request_closes_the_connection_instead_of_smuggling(healthy):
    # the "body" of a request with a bad length must not be served as a second request
    with connect(healthy) as s:
        s.sendall(b"POST /_ping HTTP/1.1\r\nContent-Length: -1\r\n\r\nGET /version HTTP/1.1\r\n\r\n")
        raw = read_all(s)
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.startswith(b"HTTP/1.1 400")


def test_half_a_request_then_disconnect(healthy):
    for partial in (b"GET /_pi", b"GET /_ping HTTP/1.1\r\nHost: x", b"POST /containers/create HTTP/1.1\r\n"
                    b"Content-Length: 500\r\nContent-Type: application/json\r\n\r\n{\"Image\":",
                    b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Im"):
        with connect(healthy) as s:
            s.sendall(partial)
        st, _ = healthy.request("GET", "/_ping", timeout=5)
        assert st == 200


def test_a_stalled_head_times_out(tmp_path):
    """A client that sends half a head and stalls is dropped after the server's header timeout.

    The real engine waits 300 s (dockerd's ReadHeaderTimeout); this drives the same server class
    with a short timeout and a one-route router, on a real socket.
    """
    router = Router()
    router.add("GET", "/_ping", lambda engine, req, resp: resp.send(200, b"OK", "text/plain"))
    path = str(tmp_path / "api.sock")
    srv = APIServer(path, None, router)
    srv.header_timeout = 0.5
    srv.serve_in_thread()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        t = time.monotonic()
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        assert s.recv(100) == b""  # closed by the server, not by our 10 s timeout
        assert 0.4 < time.monotonic() - t < 5
        s.close()
        # keep-alive: an idle connection between requests is dropped the same way
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET /_ping HTTP/1.1\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        assert read_all(s) == b""
        s.close()
    finally:
        srv.stop()


def _get(path, target, out=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target)
    data = read_all(s)
    s.close()
    if out is not None:
        out.append(data)
    return data


@pytest.mark.parametrize("outcome", ["ready", "failed"])
def test_a_starting_engine_answers_ping_at_once_and_the_rest_once_started(tmp_path, outcome):
    """While the engine starts, the server (real socket, the daemon's early router) answers
    /_ping and /version; any other request waits, then gets the started engine's answer or the
    start's failure, never a wrong one."""
    from hostbridge.guest.api.routes import early_router
    path = str(tmp_path / "api.sock")
    srv = APIServer(path, None, None, early=early_router())
    srv.serve_in_thread()
    try:
        assert _get(path, b"/_ping").startswith(b"HTTP/1.1 200")
        version = _get(path, b"/v1.44/version")
        assert version.startswith(b"HTTP/1.1 200") and b'"ApiVersion": "1.44"' in version
        got = []
        waiter = threading.Thread(target=_get, args=(path, b"/v1.44/info", got))
        waiter.start()
        time.sleep(0.3)
        assert not got  # waits for the engine
        if outcome == "ready":
            router = Router()
            router.add("GET", "/info", lambda engine, req, resp: {"Name": engine})
            srv.ready("started-engine", router)
        else:
            srv.failed("the hostbridge engine failed to start: no bridge")
        waiter.join(20)
        if outcome == "ready":
            assert got[0].startswith(b"HTTP/1.1 200") and b'"Name": "started-engine"' in got[0]
        else:
            assert got[0].startswith(b"HTTP/1.1 500") and b"failed to start: no bridge" in got[0]
            later = _get(path, b"/containers/json")  # one that comes after: told the same
            assert later.startswith(b"HTTP/1.1 500") and b"failed to start: no bridge" in later
    finally:
        srv.stop()


# -- wrong JSON types on container create -----------------------------------------------------------

BASE = {"Image": "busybox:latest", "Cmd": ["true"]}


def _with(**kw):
    return dict(BASE, **kw)


def _hc(**kw):
    return dict(BASE, HostConfig=kw)


CREATE_BAD = [
    (_with(Cmd=5), "Cmd"), (_with(Cmd={"a": 1}), "Cmd"), (_with(Cmd=[1, 2]), "Cmd[0]"),
    (_with(Entrypoint=5), "Entrypoint"), (_with(Env=[1]), "Env[0]"), (_with(Env="A=1"), "Env"),
    (_with(Env={"A": "1"}), "Env"), (_hc(Memory="lots"), "HostConfig.Memory"), (_hc(Memory=1.5), "HostConfig.Memory"),
    (_hc(PidsLimit=1.5), "HostConfig.PidsLimit"), (_hc(PidsLimit=True), "HostConfig.PidsLimit"),
    (_hc(CpuShares="x"), "HostConfig.CpuShares"), (_hc(PortBindings="x"), "HostConfig.PortBindings"),
    (_hc(PortBindings={"80/tcp": "x"}), "HostConfig.PortBindings.80/tcp"),
    (_hc(PortBindings={"80/tcp": [1]}), "HostConfig.PortBindings.80/tcp[0]"),
    (_hc(PortBindings={"80/tcp": [{"HostIp": 5}]}), "HostIp"), (_hc(Binds="x"), "HostConfig.Binds"),
    (_hc(Binds=[1]), "HostConfig.Binds[0]"), (_hc(RestartPolicy="always"), "HostConfig.RestartPolicy"),
    (_hc(RestartPolicy={"Name": 5}), "RestartPolicy.Name"),
    (_hc(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": "x"}), "MaximumRetryCount"),
    (_with(Labels={"a": 1}), "Labels.a"), (_with(Labels=["a"]), "Labels"), (_with(ExposedPorts="x"), "ExposedPorts"),
    (_with(ExposedPorts=["80"]), "ExposedPorts"), (_with(Healthcheck="x"), "Healthcheck"),
    (_with(Healthcheck={"Test": 5}), "Healthcheck.Test"),
    (_with(Healthcheck={"Test": ["CMD", "true"], "Interval": "x"}), "Healthcheck.Interval"),
    (_with(Healthcheck={"Test": ["CMD", "true"], "Retries": -1}), "Retries"),
    (_with(Healthcheck={"Test": ["BOGUS"]}), "Healthcheck.Test"),
    (_with(NetworkingConfig="x"), "NetworkingConfig"),
    (_with(NetworkingConfig={"EndpointsConfig": "x"}), "NetworkingConfig.EndpointsConfig"),
    (_with(NetworkingConfig={"EndpointsConfig": {"bridge": "x"}}), "EndpointsConfig.bridge"),
    (_with(NetworkingConfig={"EndpointsConfig": {"bridge": {"Aliases": "x"}}}), "Aliases"),
    (_hc(NetworkMode=5), "HostConfig.NetworkMode"), (_hc(Mounts=[5]), "HostConfig.Mounts[0]"),
    (_hc(Tmpfs={"/x": 5}), "HostConfig.Tmpfs"), (_hc(ExtraHosts=[5]), "HostConfig.ExtraHosts[0]"),
    (_hc(CapAdd=[5]), "HostConfig.CapAdd[0]"), (_hc(CapAdd=["NOPE"]), "CapAdd"), (_hc(CapDrop="BOGUS"), "CapDrop"),
    (_hc(LogConfig="x"), "HostConfig.LogConfig"), (_hc(Ulimits=[{"Name": "nofile", "Soft": "x"}]), "Soft"),
    (_hc(Privileged="x"), "HostConfig.Privileged"), (_hc(VolumesFrom=[5]), "HostConfig.VolumesFrom[0]"),
    (_with(HostConfig="x"), "HostConfig"), (_with(HostConfig=[1]), "HostConfig"), (_with(User=5), "User"),
    (_with(WorkingDir="relative"), "working directory"), (_with(Hostname=5), "Hostname"), (_with(Tty="x"), "Tty"),
    (_with(StopTimeout="x"), "StopTimeout"), (_with(Volumes=["x"]), "Volumes"), (_with(Image=5), "Image"),
    ([1, 2], "object"), ("str", "object"), (5, "object"),
    # values the kernel refuses at start (a 500 then) are refused at create
    (_with(Env=["A=1\x00B"]), "NUL"), (_with(Cmd=["tr\x00ue"]), "NUL"), (_with(Hostname="h" * 65), "hostname"),
    (_hc(CpusetCpus="zz"), "CpusetCpus"), (_hc(ShmSize=-1), "SHM"), (_hc(Binds=["/tmp:/"]), "'/'"),
    (_hc(Tmpfs={"relative": ""}), "absolute"), (_hc(Mounts=[{"Type": "tmpfs", "Target": "/"}]), "'/'"),
]


def test_container_create_wrong_types_are_4xx_naming_the_field(healthy):
    before = healthy.request("GET", "/containers/json?all=1")[1]
    for body, field in CREATE_BAD:
        if not isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        status, answer = healthy.request("POST", "/containers/create", body)
        assert_clean_4xx(status, answer, field)
    assert healthy.request("GET", "/containers/json?all=1")[1] == before  # nothing half-created


def test_malformed_json_bodies(healthy):
    for raw in (b"{", b"{\"Image\": }", b"\xff\xfe", b"[" * 100000, b"null", b"{\"Image\": \"busybox\"" + b" " * 10):
        status, body = healthy.request("POST", "/containers/create", raw, {"Content-Type": "application/json"})
        assert_clean_4xx(status, body)


def test_strslice_strings_are_accepted_as_docker_does(healthy):
    status, body = healthy.request("POST", "/containers/create", _with(Cmd="true", HostConfig={"CapAdd": "NET_ADMIN"}))
    assert status == 201, body
    try:
        status, info = healthy.request("GET", "/containers/%s/json" % body["Id"])
        assert info["Config"]["Cmd"] == ["true"] and info["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    finally:
        healthy.request("DELETE", "/containers/%s?force=1" % body["Id"])


# -- other bodies and query strings ------------------------------------------------------------------

@pytest.fixture
def running(engine):
    status, body = engine.request("POST", "/containers/create", _with(Cmd=["sleep", "1000"]))
    assert status == 201, body
    cid = body["Id"]
    assert engine.request("POST", "/containers/%s/start" % cid)[0] == 204
    yield cid
    engine.request("DELETE", "/containers/%s?force=1" % cid)


def test_other_bodies_with_wrong_types(healthy, running):
    c = "/containers/" + running
    cases = [
        ("POST", c + "/exec", {"Cmd": 5}, "Cmd"), ("POST", c + "/exec", {"Cmd": [1]}, "Cmd[0]"),
        ("POST", c + "/exec", {"Cmd": ["true"], "Env": "x"}, "Env"),
        ("POST", c + "/exec", {"Cmd": ["true"], "Tty": "x"}, "Tty"),
        ("POST", c + "/exec", {"Cmd": ["true"], "User": 5}, "User"), ("POST", c + "/exec", [1], "object"),
        ("POST", c + "/exec", b"{bad", "JSON"),
        ("POST", c + "/update", {"Memory": "x"}, "Memory"), ("POST", c + "/update", {"PidsLimit": 1.5}, "PidsLimit"),
        ("POST", c + "/update", {"RestartPolicy": "x"}, "RestartPolicy"), ("POST", c + "/update", [1], "object"),
        ("POST", "/networks/create", {"Name": 5}, "Name"), ("POST", "/networks/create", {"Name": "n", "IPAM": "x"},
                                                            "IPAM"),
        ("POST", "/networks/create", {"Name": "n", "IPAM": {"Config": [5]}}, "IPAM.Config[0]"),
        ("POST", "/networks/create", {"Name": "n", "Labels": "x"}, "Labels"),
        ("POST", "/networks/create", {"Name": "n", "Options": [1]}, "Options"),
        ("POST", "/networks/create", {"Name": "n", "Internal": "x"}, "Internal"),
        ("POST", "/networks/bridge/connect", {"Container": 5}, "Container"),
        ("POST", "/volumes/create", {"Name": 5}, "Name"), ("POST", "/volumes/create", {"Name": "v", "Labels": "x"},
                                                           "Labels"),
        ("POST", "/volumes/create", {"Name": "v", "DriverOpts": "x"}, "DriverOpts"),
        ("POST", "/volumes/create", {"Name": "v" * 300}, "255"),
        ("POST", "/commit?container=" + running, {"Cmd": 5}, "Cmd"),
    ]
    for method, path, body, field in cases:
        status, answer = healthy.request(method, path, body, {"Content-Type": "application/json"})
        assert_clean_4xx(status, answer, field)
    exec_id = healthy.request("POST", c + "/exec", {"Cmd": ["true"]})[1]["Id"]
    status, answer = healthy.request("POST", "/exec/%s/start" % exec_id, {"Detach": "x"})
    assert_clean_4xx(status, answer, "Detach")


def test_query_parameters_of_wrong_types_and_shapes(healthy, running):
    c = "/containers/" + running
    q = "%7B%22status%22%3A%22x%22%7D"  # {"status": "x"}
    cases = [
        ("GET", "/containers/json?filters=[1]", "filter"), ("GET", "/containers/json?filters=" + q, "status"),
        ("GET", "/containers/json?filters=%7B", "filters"), ("GET", "/containers/json?limit=abc", "limit"),
        ("GET", "/images/json?filters=[1]", "filter"), ("GET", "/images/json?filters=" + q, "filter"),
        ("GET", "/networks?filters=[1]", "filter"), ("GET", "/volumes?filters=[1]", "filter"),
        ("GET", "/volumes?filters=%7B%22dangling%22%3A%5B%22x%22%5D%7D", "dangling"),
        ("GET", "/events?since=abc&until=1", "abc"), ("GET", "/events?filters=[1]&until=1", "filter"),
        ("POST", "/containers/prune?filters=[1]", "filter"), ("POST", "/images/prune?filters=[1]", "filter"),
        ("POST", c + "/stop?t=abc", "t"), ("POST", c + "/restart?t=1.5", "t"),
        ("POST", c + "/restart?t=99999999999999999999", "out of range"),
        ("GET", c + "/logs?stdout=1&tail=-x", "tail"), ("GET", c + "/logs?stdout=1&since=xyz", "xyz"),
        ("POST", c + "/resize?h=99999999999999999999&w=1", "h"), ("POST", c + "/resize?h=-1&w=1", "size"),
        ("POST", c + "/resize?h=abc&w=1", "h"), ("POST", c + "/kill?signal=NOPE", "signal"),
        ("POST", c + "/kill?signal=999", "signal"), ("POST", c + "/wait?condition=zzz", "condition"),
        ("GET", c + "/archive?path=", "path"), ("GET", c + "/archive?path=/etc/hostname/x", "/etc/hostname/x"),
        ("POST", "/images/create?fromImage=..%2F..%2Fx", ""), ("POST", "/images/busybox:latest/tag?repo=UPPER", ""),
        ("POST", "/build?buildargs=[1]", ""),
        ("POST", "/exec/nope/resize?h=x&w=1", ""),
    ]
    for method, path, word in cases:
        status, body = healthy.request(method, path)
        assert_clean_4xx(status, body, word)
    # resizing a container without a tty is a no-op, as with dockerd (not a 500)
    assert healthy.request("POST", c + "/resize?h=10&w=10")[0] in (200, 204)
    # the container survived all of it
    assert healthy.request("GET", c + "/json")[1]["State"]["Running"]


def test_stop_with_the_largest_timeout(healthy):
    # a container that exits on SIGTERM: the stop returns at once, whatever -t says (was a 500:
    # the wait's timeout overflowed)
    status, body = healthy.request("POST", "/containers/create",
                                   _with(Cmd=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]))
    assert status == 201, body
    cid = body["Id"]
    try:
        assert healthy.request("POST", "/containers/%s/start" % cid)[0] == 204
        time.sleep(0.3)  # the trap is set
        status, body = healthy.request("POST", "/containers/%s/stop?t=9223372036854775807" % cid, timeout=30)
        assert status == 204, body
    finally:
        healthy.request("DELETE", "/containers/%s?force=1" % cid)


# -- resources --------------------------------------------------------------------------------------

def test_a_body_that_never_ends_is_cut_at_max_json_body(healthy):
    """A chunked JSON body streamed without end: refused after MAX_JSON_BODY, connection closed."""
    chunk = b" " * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with connect(healthy, timeout=30) as s:
        s.sendall(b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/json\r\n\r\n")
        # like Go's client: keep sending, but watch for an early answer and stop then
        while sent <= 2 * MAX_JSON_BODY and not select.select([s], [], [], 0)[0]:
            s.sendall(frame)
            sent += len(chunk)
        raw = read_all(s)
    assert MAX_JSON_BODY <= sent < 2 * MAX_JSON_BODY
    status, body = parse(raw)
    assert_clean_4xx(status, body, "too large")


def test_two_hundred_connections_opened_and_dropped(healthy):
    baseline = thread_count(healthy)
    socks = []
    t = time.monotonic()
    try:
        for i in range(200):
            s = connect(healthy)
            if i % 3 == 0:
                s.sendall(b"GET /_ping HTTP/1.1\r\n")  # half a head
            elif i % 3 == 1:
                s.sendall(b"POST /containers/create HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            socks.append(s)
        st, _ = healthy.request("GET", "/_ping", timeout=10)
        assert st == 200
    finally:
        for s in socks:
            s.close()
    assert time.monotonic() - t < 30
    n = settle_threads(healthy, baseline)
    assert n <= baseline + 4, (baseline, n)


def _stream_and_drop(engine, request, wait_for=b"HTTP/1.1"):
    s = connect(engine)
    s.sendall(request)
    got = b""
    end = time.monotonic() + 10
    while wait_for not in got and time.monotonic() < end:
        got += s.recv(65536)
    assert wait_for in got, got
    s.close()


def test_clients_leaving_mid_stream_leave_no_threads(healthy, running):
    status, body = healthy.request("POST", "/containers/create",
                                   _with(Cmd=["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
                                         AttachStdout=True, OpenStdin=True))
    assert status == 201, body
    ticker = body["Id"]
    try:
        assert healthy.request("POST", "/containers/%s/start" % ticker)[0] == 204
        baseline = thread_count(healthy)
        for _ in range(5):
            _stream_and_drop(healthy, b"GET /containers/%s/logs?stdout=1&follow=1 HTTP/1.1\r\n\r\n" % ticker.encode(),
                             b"tick")
            _stream_and_drop(healthy, b"GET /events HTTP/1.1\r\n\r\n")
            _stream_and_drop(healthy, b"GET /containers/%s/stats HTTP/1.1\r\n\r\n" % running.encode(), b"read")
            _stream_and_drop(healthy, b"POST /containers/%s/attach?stream=1&stdout=1&stdin=1 HTTP/1.1\r\n"
                                      b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % ticker.encode(), b"tick")
            _stream_and_drop(healthy, b"POST /containers/%s/wait HTTP/1.1\r\n\r\n" % running.encode())
            st, ex = healthy.request("POST", "/containers/%s/exec" % ticker,
                                     {"Cmd": ["sh", "-c", "for i in $(seq 10); do echo tick; sleep 0.2; done"],
                                      "AttachStdout": True, "AttachStdin": True})
            assert st == 201, ex
            body = b'{"Detach": false, "Tty": false}'
            _stream_and_drop(healthy, b"POST /exec/%s/start HTTP/1.1\r\nContent-Type: application/json\r\n"
                                      b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s"
                                      % (ex["Id"].encode(), len(body), body), b"tick")
        n = settle_threads(healthy, baseline)
        assert n <= baseline + 4, "threads grew from %d to %d after 30 dropped streams" % (baseline, n)
        assert healthy.request("GET", "/containers/%s/json" % ticker)[1]["State"]["Running"]
    finally:
        healthy.request("DELETE", "/containers/%s?force=1" % ticker)


def test_concurrent_garbage_does_not_disturb_a_good_client(healthy):
    errors = []

    def spam(i):
        try:
            for data in (b"GARBAGE\r\n\r\n", b"\x00" * 1000, b"GET /_ping HTTP/1.1\r\nbad\r\n\r\n"):
                exchange(healthy, data, timeout=10)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=spam, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for _ in range(20):
        assert healthy.request("GET", "/_ping", timeout=5)[0] == 200
    for t in threads:
        t.join(30)
    assert not errors


# -- settings that would reach the host -------------------------------------------------------------

def _read_sysctl(name):
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def test_host_wide_sysctls_are_refused(healthy):
    # the value written is the host's current one: were the check ever lost, the host stays as it was
    core = _read_sysctl("kernel.core_pattern")
    for sysctls, net, word in (({"kernel.core_pattern": core}, None, "kernel.core_pattern"),
                               ({"vm.overcommit_memory": _read_sysctl("vm.overcommit_memory")}, None, "vm."),
                               ({"kernel/core_pattern": core}, None, "kernel/core_pattern"),
                               ({"net.ipv4.ip_forward": _read_sysctl("net.ipv4.ip_forward")}, "host", "host network"),
                               ({"kernel.shmmni": _read_sysctl("kernel.shmmni")}, "ipc", "IPC"),
                               ({"../../etc/x": "1"}, None, "sysctl")):
        hc = {"Sysctls": sysctls}
        if net == "ipc":
            hc["IpcMode"] = "host"
        elif net:
            hc["NetworkMode"] = net
        status, body = healthy.request("POST", "/containers/create", _with(HostConfig=hc))
        assert_clean_4xx(status, body, word)
    assert _read_sysctl("kernel.core_pattern") == core


def test_namespaced_sysctls_stay_in_the_container(healthy):
    host = _read_sysctl("kernel.shmmni")
    want = "1234" if host != "1234" else "1235"
    config = _with(Cmd=["cat", "/proc/sys/kernel/shmmni"], HostConfig={"Sysctls": {"kernel.shmmni": want}})
    status, body = healthy.request("POST", "/containers/create", config)
    assert status == 201, body
    cid = body["Id"]
    try:
        assert healthy.request("POST", "/containers/%s/start" % cid)[0] == 204
        healthy.request("POST", "/containers/%s/wait" % cid, timeout=30)
        status, logs = healthy.request("GET", "/containers/%s/logs?stdout=1" % cid)
        assert logs[8:].decode().strip() == want
        assert _read_sysctl("kernel.shmmni") == host
    finally:
        healthy.request("DELETE", "/containers/%s?force=1" % cid)


def test_streams_work_when_the_engine_holds_over_1024_descriptors(healthy):
    """select() refuses descriptors past 1024; a stream's "client gone" check must not use it."""
    idle = []
    baseline = thread_count(healthy)
    try:
        for _ in range(1100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.append(s)
            s.connect(healthy.sock)  # blocking: waits for room in the backlog rather than EAGAIN
        def held():
            return len(os.listdir("/proc/%d/fd" % healthy.proc.pid))

        end = time.monotonic() + 30
        while (thread_count(healthy) < baseline + 1000 or held() <= 1100) and time.monotonic() < end:
            time.sleep(0.1)  # until the engine has accepted them all (a thread and a descriptor each)
        # the premise: the engine really holds them (else this test shows nothing about select)
        assert thread_count(healthy) >= baseline + 1000
        assert held() > 1100
        st, _ = healthy.request("GET", "/_ping", timeout=10)
        assert st == 200
        with connect(healthy) as s:
            s.sendall(b"GET /events HTTP/1.1\r\n\r\n")
            got = b""
            end = time.monotonic() + 2
            s.settimeout(0.2)
            while time.monotonic() < end:
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    break
                got += d
            assert got.startswith(b"HTTP/1.1 200"), got
            assert b"0\r\n\r\n" not in got and b"error" not in got, got  # still streaming, no error
    finally:
        for s in idle:
            s.close()
