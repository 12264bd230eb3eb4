"""version, info, /_ping, API prefixes, unknown endpoints, events, system df."""

import json
import re
import subprocess
import time

import pytest

from tests.support.engine import UnixHTTPConnection

from .conftest import dock, ok

pytestmark = pytest.mark.root


def _raw(engine, method, path):
    conn = UnixHTTPConnection(engine.sock)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping_headers(engine, method):
    status, h, body = _raw(engine, method, "/_ping")
    assert status == 200
    assert h["api-version"] == "1.44" and h["ostype"] == "linux"
    assert h["docker-experimental"] == "false" and h["builder-version"] == "1"
    assert body == (b"OK" if method == "GET" else b"")


def test_version_fields_and_prefixes(engine, env):
    for prefix in ("", "/v1.24", "/v1.40", "/v1.44"):
        status, _, body = _raw(engine, "GET", prefix + "/version")
        v = json.loads(body)
        assert status == 200
        assert v["ApiVersion"] == "1.44" and v["MinAPIVersion"] == "1.24" and v["Arch"] in ("amd64", "arm64")
        assert v["Os"] == "linux" and v["Components"][0]["Name"] == "Engine"
    out = ok(env, "version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}/{{.Server.Arch}}")
    assert re.fullmatch(r"1\.44 linux/(amd64|arm64)\n", out)
    assert "Server:" in ok(env, "version")


def test_info_as_the_cli_prints_it(env):
    out = ok(env, "info", "--format", "{{.OSType}} {{.LoggingDriver}} {{.NCPU}} {{json .Swarm.LocalNodeState}}")
    assert re.fullmatch(r'linux json-file \d+ "inactive"\n', out)
    r = dock(env, "info")
    assert r.returncode == 0 and "Server Version:" in r.stdout and "Storage Driver:" in r.stdout


@pytest.mark.parametrize("path", ["/nowhere", "/v1.44/nowhere", "/containers/x/nothing", "/v1.44/images/json/extra/x"])
def test_unknown_endpoints_are_404_page_not_found(engine, path):
    status, h, body = _raw(engine, "GET", path)
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    assert h["content-type"].startswith("application/json")


def test_events_filters_since_until(env):
    since = str(time.time() - 0.5)
    ok(env, "run", "--name", "compat-ev1", "--network", "none", "busybox", "true")
    assert dock(env, "run", "--name", "compat-ev2", "--network", "none", "-l", "ev=yes", "busybox", "sh", "-c",
                "exit 3").returncode == 3
    ok(env, "tag", "busybox", "compat/ev:tagged")  # one image event in the window
    until = str(time.time() + 0.2)
    time.sleep(0.3)
    fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"
    out = ok(env, "events", "--since", since, "--until", until, "--filter", "container=compat-ev1",
             "--format", fmt, timeout=20).splitlines()
    assert out[:4] == ["container create compat-ev1", "container attach compat-ev1",
                       "container start compat-ev1", "container die compat-ev1"] or \
        [x for x in out if "attach" not in x][:3] == ["container create compat-ev1", "container start compat-ev1",
                                                     "container die compat-ev1"]
    assert all(line.endswith(" compat-ev1") for line in out)
    die = ok(env, "events", "--since", since, "--until", until, "--filter", "event=die", "--filter",
             "label=ev=yes", "--format", "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
    assert die.splitlines() == ["compat-ev2 3"]
    ok(env, "rmi", "compat/ev:tagged")
    types = ok(env, "events", "--since", since, "--until", until, "--filter", "type=image",
               "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").splitlines()
    # the window opens 0.5 s early: an earlier test's image events may show too, all of type image
    assert "image tag compat/ev:tagged" in types and all(x.startswith("image ") for x in types), types


def test_events_stream_live(env):
    p = subprocess.Popen(["docker", "events", "--filter", "container=compat-live", "--format", "{{.Action}}"],
                         env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        ok(env, "create", "--name", "compat-live", "busybox", "true")
        line = _readline(p.stdout, 5)
        assert line == "create\n"
        ok(env, "rm", "compat-live")
        assert _readline(p.stdout, 5) == "destroy\n"
    finally:
        p.kill()
        p.wait()


def _readline(f, timeout):
    import select
    r, _, _ = select.select([f], [], [], timeout)
    assert r, "no event within %ss" % timeout
    return f.readline()


def test_system_df(env):
    ok(env, "run", "--name", "compat-df", "--network", "none", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f")
    out = ok(env, "system", "df")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"Images", "Containers", "Local", "Build"} <= set(rows)
    v = ok(env, "system", "df", "-v")
    assert "Images space usage:" in v and "Containers space usage:" in v
    line = [x for x in v.splitlines() if x.rstrip().endswith("compat-df")][0]
    assert "100kB" in line
    busy = [x for x in v.splitlines() if x.startswith("busybox ")][0]
    assert "N/A" not in busy  # shared/unique sizes are computed
