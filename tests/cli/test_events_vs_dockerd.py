"""``docker events`` and ``docker stats --no-stream``, stock CLI against hostbridge and dockerd.

What monitoring tools and ``docker compose`` read: the events a container's life emits for its
networks and volumes, and the filters on them. Each test runs once per ``backend``.
"""

import time
import uuid

import pytest

pytestmark = pytest.mark.root


def _ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout


def _events(backend, since, *filters, fmt):
    """The events since ``since`` (an int timestamp) up to now, through the stock CLI."""
    until = int(time.time()) + 1
    time.sleep(max(0.0, until - time.time()) + 0.1)  # --until in the future would wait for it
    args = ["events", "--since", str(since), "--until", str(until), "--format", fmt]
    for f in filters:
        args += ["--filter", f]
    return _ok(backend.docker(*args)).splitlines()


@pytest.fixture
def life(backend):
    """One container's whole life on a user network with a named and an anonymous volume."""
    tag = uuid.uuid4().hex[:8]
    net, vol, name = "hb14-evn-" + tag, "hb14-evv-" + tag, "hb14-evc-" + tag
    since = int(time.time())
    _ok(backend.docker("network", "create", net))
    _ok(backend.docker("volume", "create", vol))
    _ok(backend.docker("run", "--name", name, "--network", net, "-v", vol + ":/named", "-v", "/anon", "busybox", "true"))
    _ok(backend.docker("rm", "-v", name))
    _ok(backend.docker("network", "rm", net))
    _ok(backend.docker("volume", "rm", vol))
    return {"since": since, "net": net, "vol": vol, "name": name}


def test_a_container_s_life_in_network_events(backend, life):
    got = _events(backend, life["since"], "type=network", "network=" + life["net"],
                  fmt="{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}")
    n = life["net"]
    assert got == ["create %s bridge" % n, "connect %s bridge" % n, "disconnect %s bridge" % n, "destroy %s bridge" % n]


def test_a_container_s_life_in_volume_events(backend, life):
    got = _events(backend, life["since"], "type=volume",
                  fmt="{{.Action}} {{.Actor.Attributes.driver}} {{.Actor.Attributes.destination}}"
                      " {{index .Actor.Attributes \"read/write\"}}")
    # dockerd logs a create for each volume a container names, new or not; the order of mounts
    # follows a Go map there, so they are compared sorted
    none = "<no value> "  # "destination" is absent from all but mount; index gives "" for "read/write"
    assert sorted(got) == sorted(["create local " + none] * 3 + ["mount local /named true", "mount local /anon true"]
                                 + ["unmount local " + none] * 2 + ["destroy local " + none] * 2)
    assert [g.split()[0] for g in got][-2:] == ["destroy", "destroy"]


def test_a_container_s_life_in_container_events(backend, life):
    got = _events(backend, life["since"], "container=" + life["name"], fmt="{{.Type}} {{.Action}}")
    assert got == ["container create", "container attach", "container start", "container die", "container destroy"]


def test_network_none_and_host_connect_too(backend):
    tag = uuid.uuid4().hex[:8]
    since = int(time.time())
    for mode in ("none", "host"):
        _ok(backend.docker("run", "--rm", "--name", "hb14-evm-%s-%s" % (mode, tag), "--network", mode, "busybox", "true"))
    got = _events(backend, since, "type=network", "event=connect", "event=disconnect",
                  fmt="{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}")
    assert got == ["connect none null", "disconnect none null", "connect host host", "disconnect host host"]


def test_stats_no_stream_side_by_side(backend):
    name = "hb14-st-" + uuid.uuid4().hex[:8]
    _ok(backend.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60"))
    try:
        out = _ok(backend.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.NetIO}}", name))
        assert out == "%s 1 0B / 0B\n" % name
        out = _ok(backend.docker("stats", "--no-stream", "--format", "table {{.Name}}\t{{.PIDs}}", name))
        assert out.splitlines() == ["NAME%sPIDS" % (" " * (max(len(name), 4) + 3 - 4)), "%s   1" % name]
    finally:
        backend.docker("rm", "-f", name)
