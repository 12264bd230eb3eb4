"""Health checks: the engine runs a container's Healthcheck probe as dockerd does.

The pure rules (status, streak, start period, merge with the image) are checked directly; the
rest on real containers through the engine's API, with intervals of a few hundred milliseconds.
"""

import json
import os
import signal
import time
import urllib.parse

import pytest

from hostbridge.guest.containers import views
from hostbridge.guest.containers.config import merge_config
from hostbridge.guest.containers.health import MAX_LOG, apply_result, probe_argv
from hostbridge.guest.errors import InvalidParameter

MS = 10 ** 6
STARTED = "2026-01-01T00:00:00.000000000Z"


def _result(code, start="2026-01-01T00:00:10.000000000Z"):
    return {"Start": start, "End": start, "ExitCode": code, "Output": ""}


# ---- the rules, without containers ---------------------------------------------------------
def test_status_follows_dockers_rules():
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}
    cfg = {"Healthcheck": {"Test": ["CMD", "true"], "Retries": 2}}
    assert apply_result(h, _result(1), cfg, STARTED) is False  # one failure: still starting
    assert h["Status"] == "starting" and h["FailingStreak"] == 1
    assert apply_result(h, _result(1), cfg, STARTED) is True
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 2
    assert apply_result(h, _result(0), cfg, STARTED) is True
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0
    assert apply_result(h, _result(7), cfg, STARTED) is False  # healthy stays healthy for a while
    assert h["Status"] == "healthy" and h["FailingStreak"] == 1
    for _ in range(10):
        apply_result(h, _result(-1), cfg, STARTED)
    assert len(h["Log"]) == MAX_LOG and h["Status"] == "unhealthy"


def test_start_period_failures_do_not_count_until_first_success():
    cfg = {"Healthcheck": {"Test": ["CMD", "true"], "Retries": 1, "StartPeriod": 30 * 10 ** 9}}
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert apply_result(h, _result(1), cfg, STARTED) is False  # 10 s into a 30 s start period
    assert h["FailingStreak"] == 0 and h["Status"] == "starting" and len(h["Log"]) == 1
    assert apply_result(h, _result(1, "2026-01-01T00:00:31.000000000Z"), cfg, STARTED) is True
    assert h["Status"] == "unhealthy"
    h = {"Status": "healthy", "FailingStreak": 0, "Log": []}  # once healthy, the period is over
    apply_result(h, _result(1), cfg, STARTED)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 1


def test_probe_argv_and_merge_with_the_image():
    assert probe_argv({"Healthcheck": {"Test": ["CMD", "ls", "-l"]}}) == ["ls", "-l"]
    assert probe_argv({"Healthcheck": {"Test": ["CMD-SHELL", "exit 1"]}}) == ["/bin/sh", "-c", "exit 1"]
    assert probe_argv({"Shell": ["/bin/ash", "-ec"], "Healthcheck": {"Test": ["CMD-SHELL", "x"]}}) == [
        "/bin/ash", "-ec", "x"]
    for off in ({}, {"Healthcheck": None}, {"Healthcheck": {"Test": ["NONE"]}}, {"Healthcheck": {"Test": []}}):
        assert probe_argv(off) is None
    image = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5 * 10 ** 9, "Retries": 4}}
    assert merge_config({}, image)["Healthcheck"] == image["Healthcheck"]
    mine = merge_config({"Healthcheck": {"Test": [], "Interval": 10 ** 9}}, image)["Healthcheck"]
    assert mine == {"Test": ["CMD", "true"], "Interval": 10 ** 9, "Retries": 4}
    assert merge_config({"Healthcheck": {"Test": ["NONE"]}}, image)["Healthcheck"]["Test"] == ["NONE"]


def test_ps_status_and_health_filter_values():
    now = time.time()
    st = {"Running": True, "StartedAt": STARTED, "Health": {"Status": "starting"}}
    assert views.status_text(st, now).endswith("(health: starting)")
    st["Health"]["Status"] = "unhealthy"
    assert views.status_text(st, now).endswith("(unhealthy)")
    st["Paused"] = True
    assert views.status_text(st, now).endswith("(Paused)")
    views.check_filters({"health": ["healthy", "unhealthy", "starting", "none"]})
    with pytest.raises(InvalidParameter, match="Unrecognised filter value for health: bogus"):
        views.check_filters({"health": ["bogus"]})


# ---- real containers -------------------------------------------------------------------------
def _run(engine, name, health, cmd=("sleep", "60"), image="busybox"):
    s, body = engine.request("POST", "/containers/create?name=" + name,
                             {"Image": image, "Cmd": list(cmd), "Healthcheck": health})
    assert s == 201, body
    s, body = engine.request("POST", "/containers/%s/start" % name)
    assert s == 204, body
    return name


def _state(engine, name):
    s, body = engine.request("GET", "/containers/%s/json" % name)
    assert s == 200, body
    return body["State"]


def _wait_health(engine, name, want, timeout=10.0, pred=None):
    """Poll inspect until State.Health.Status is ``want`` (and ``pred(health)`` holds)."""
    end = time.monotonic() + timeout
    h = None
    while time.monotonic() < end:
        h = _state(engine, name).get("Health")
        if h and h["Status"] == want and (pred is None or pred(h)):
            return h
        time.sleep(0.1)
    raise AssertionError("%s: health never became %s: %s" % (name, want, h))


def _exec(engine, name, cmd):
    s, body = engine.request("POST", "/containers/%s/exec" % name, {"Cmd": cmd})
    assert s == 201, body
    s, body = engine.request("POST", "/exec/%s/start" % body["Id"], {"Detach": False})
    assert s == 200, body
    return body


@pytest.fixture
def names(engine):
    made = []
    yield made
    for n in made:
        engine.request("DELETE", "/containers/%s?force=1" % n)


@pytest.mark.root
def test_unhealthy_then_healthy_with_events_and_hidden_execs(engine, names):
    since = time.time()
    names.append(_run(engine, "hc-flip", {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 200 * MS,
                                          "Retries": 2}))
    st = _state(engine, "hc-flip")
    assert st["Health"]["Status"] == "starting" and st["Health"]["FailingStreak"] == 0
    h = _wait_health(engine, "hc-flip", "unhealthy")
    assert h["FailingStreak"] >= 2
    for entry in h["Log"]:
        assert entry["ExitCode"] == 1 and entry["Output"] == ""
        assert entry["Start"] <= entry["End"] and entry["Start"].endswith("Z")
    for _ in range(5):  # a probe runs every 200 ms: none of them shows as the container's exec
        assert engine.request("GET", "/containers/hc-flip/json")[1]["ExecIDs"] is None
        time.sleep(0.05)
    _exec(engine, "hc-flip", ["touch", "/tmp/ok"])
    h = _wait_health(engine, "hc-flip", "healthy")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    ps = engine.request("GET", "/containers/json?filters=" + urllib.parse.quote(json.dumps(
        {"health": ["healthy"]})))[1]
    mine = [c for c in ps if c["Names"] == ["/hc-flip"]]
    assert mine and mine[0]["Status"].endswith("(healthy)")
    query = urllib.parse.urlencode({"since": "%.3f" % since, "until": "%.3f" % time.time(),
                                    "filters": json.dumps({"container": ["hc-flip"]})})
    events = engine.request("GET", "/events?" + query)[1]
    actions = [e["Action"] for e in (events if isinstance(events, list) else [events])]
    assert actions.index("health_status: unhealthy") < actions.index("health_status: healthy")
    assert "exec_create: /bin/sh -c test -e /tmp/ok" in actions and "exec_die" in actions


@pytest.mark.root
def test_timeout_is_recorded_as_minus_one_and_the_probe_killed(engine, names):
    names.append(_run(engine, "hc-slow", {"Test": ["CMD", "sleep", "5"], "Interval": 500 * MS,
                                          "Timeout": 300 * MS, "Retries": 1}))
    h = _wait_health(engine, "hc-slow", "unhealthy", timeout=5)
    entry = h["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (300ms)"
    pid = _state(engine, "hc-slow")["Pid"]
    ns = os.readlink("/proc/%d/ns/pid" % pid)

    def probes():
        """Host pids of the `sleep 5` probes alive in the container now."""
        found = set()
        for p in os.listdir("/proc"):
            try:
                if p.isdigit() and os.readlink("/proc/%s/ns/pid" % p) == ns:
                    with open("/proc/%s/cmdline" % p, "rb") as f:
                        if f.read() == b"sleep\x005\x00":
                            found.add(int(p))
            except OSError:
                continue
        return found

    # a timed-out probe is killed at its 0.3 s timeout; one left alive lives its 5 s. Whatever
    # probes run now must be gone within 3 s (a bound wide enough for a loaded machine)
    deadline = time.monotonic() + 10
    running = probes()
    while not running and time.monotonic() < deadline:  # the premise: a probe is seen running
        time.sleep(0.02)
        running = probes()
    assert running, "no probe was ever seen running"
    time.sleep(3)
    assert not running & probes(), "a probe outlived its timeout"


@pytest.mark.root
def test_output_is_merged_and_truncated(engine, names):
    names.append(_run(engine, "hc-out", {"Test": ["CMD-SHELL", "echo out; echo err >&2; "
                                                  "head -c 5000 /dev/zero | tr '\\0' a; exit 3"],
                                         "Interval": 200 * MS}))
    h = _wait_health(engine, "hc-out", "starting", pred=lambda h: h["Log"])
    out = h["Log"][0]["Output"]
    assert h["Log"][0]["ExitCode"] == 3
    assert out.startswith("out\nerr\naaa") and out.endswith("a...") and len(out) == 4096 + 3


@pytest.mark.root
def test_start_period_keeps_starting_and_uses_the_start_interval(engine, names):
    names.append(_run(engine, "hc-grace", {"Test": ["CMD", "false"], "Interval": 30 * 10 ** 9, "Retries": 1,
                                           "StartPeriod": 60 * 10 ** 9, "StartInterval": 150 * MS}))
    h = _wait_health(engine, "hc-grace", "starting", pred=lambda h: len(h["Log"]) >= 3)
    assert h["FailingStreak"] == 0 and all(e["ExitCode"] == 1 for e in h["Log"])


@pytest.mark.root
def test_pause_stop_and_start(engine, names):
    names.append(_run(engine, "hc-life", {"Test": ["CMD", "true"], "Interval": 200 * MS}))
    _wait_health(engine, "hc-life", "healthy")
    assert engine.request("POST", "/containers/hc-life/pause")[0] == 204
    h = _state(engine, "hc-life")["Health"]
    assert h["Status"] == "unhealthy"  # docker: a paused container is not probed, and says so
    time.sleep(0.6)
    assert _state(engine, "hc-life")["Health"]["Log"] == h["Log"]
    assert engine.request("POST", "/containers/hc-life/unpause")[0] == 204
    _wait_health(engine, "hc-life", "healthy")
    assert engine.request("POST", "/containers/hc-life/stop?t=0")[0] == 204
    st = _state(engine, "hc-life")
    assert st["Health"]["Status"] == "unhealthy" and not st["Running"]
    before = st["Health"]["Log"][-1]["Start"]
    unhealthy = engine.request("GET", "/containers/json?all=1&filters=" + urllib.parse.quote(json.dumps(
        {"health": ["unhealthy"]})))[1]
    assert "/hc-life" in [c["Names"][0] for c in unhealthy]
    assert engine.request("POST", "/containers/hc-life/start")[0] == 204
    assert _state(engine, "hc-life")["Health"]["Status"] == "starting"
    h = _wait_health(engine, "hc-life", "healthy")
    assert h["Log"][-1]["Start"] > before


@pytest.mark.root
def test_image_healthcheck_is_inherited_and_none_disables_it(engine, names):
    names.append(_run(engine, "hc-base", {"Test": ["NONE"]}))
    s, body = engine.request("POST", "/commit?container=hc-base&repo=hc-image&tag=1",
                             {"Healthcheck": {"Test": ["CMD-SHELL", "exit 0"], "Interval": 200 * MS}})
    assert s == 201, body
    assert "Health" not in _state(engine, "hc-base")
    try:
        names.append(_run(engine, "hc-inherit", None, image="hc-image:1"))
        _wait_health(engine, "hc-inherit", "healthy")
        names.append(_run(engine, "hc-off", {"Test": ["NONE"]}, image="hc-image:1"))
        time.sleep(0.5)
        assert "Health" not in _state(engine, "hc-off")
        none = engine.request("GET", "/containers/json?filters=" + urllib.parse.quote(json.dumps(
            {"health": ["none"]})))[1]
        assert {"/hc-off", "/hc-base"} <= {c["Names"][0] for c in none}
        assert "/hc-inherit" not in {c["Names"][0] for c in none}
    finally:
        for n in ("hc-inherit", "hc-off"):
            engine.request("DELETE", "/containers/%s?force=1" % n)
        engine.request("DELETE", "/images/hc-image:1")


@pytest.mark.root
def test_checks_go_on_after_an_engine_restart(tmp_path, busybox_rootfs_tar):
    from tests.support.engine import Engine
    e = Engine(tmp_path).start()
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        _run(e, "hc-live", {"Test": ["CMD", "true"], "Interval": 200 * MS})
        _wait_health(e, "hc-live", "healthy")
        e.proc.send_signal(signal.SIGTERM)
        e.proc.wait(15)
        restarted = time.time()
        e.start()
        st = _state(e, "hc-live")
        assert st["Running"]
        h = _wait_health(e, "hc-live", "healthy", pred=lambda h: h["Log"][-1]["Start"] > _rfc3339(restarted))
        assert h["FailingStreak"] == 0
    finally:
        e.close()


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06d" % int((t % 1) * 1e6)
