"""Health checks through the stock docker CLI: ``--health-*``, HEALTHCHECK, inspect, ps, events."""

import json
import time

import pytest

from .conftest import dock, ok

pytestmark = pytest.mark.root


def _health(env, name):
    out = ok(env, "inspect", "-f", "{{json .State.Health}}", name).strip()
    return json.loads(out)


def _wait(env, name, status, timeout=15.0):
    end = time.monotonic() + timeout
    got = None
    while time.monotonic() < end:
        got = ok(env, "inspect", "-f", "{{.State.Health.Status}}", name).strip()
        if got == status:
            return
        time.sleep(0.2)
    raise AssertionError("%s: health stayed %r, wanted %r" % (name, got, status))


def _ps(env, *filters):
    args = ["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]
    for f in filters:
        args += ["--filter", f]
    return dict(line.split("\t") for line in ok(env, *args).splitlines() if line.startswith("compat-"))


def test_health_cmd_starting_unhealthy_then_healthy(env):
    since = str(int(time.time()))
    ok(env, "run", "-d", "--name", "compat-hc", "--health-cmd", "test -e /tmp/ok", "--health-interval", "1s",
       "--health-retries", "2", "busybox", "sleep", "60")
    assert ok(env, "inspect", "-f", "{{.State.Health.Status}}", "compat-hc").strip() == "starting"
    assert _ps(env)["compat-hc"].endswith("(health: starting)")
    assert "compat-hc" in _ps(env, "health=starting")
    _wait(env, "compat-hc", "unhealthy")
    assert _ps(env)["compat-hc"].endswith("(unhealthy)")
    assert set(_ps(env, "health=unhealthy")) >= {"compat-hc"}
    assert "compat-hc" not in _ps(env, "health=healthy")
    ok(env, "exec", "compat-hc", "touch", "/tmp/ok")
    _wait(env, "compat-hc", "healthy")
    assert _ps(env)["compat-hc"].endswith("(healthy)")
    assert "compat-hc" in _ps(env, "health=healthy")
    h = _health(env, "compat-hc")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0 and len(h["Log"]) <= 5
    events = ok(env, "events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                "container=compat-hc", "--filter", "event=health_status", "--format", "{{.Action}}")
    assert events.split("\n")[:2] == ["health_status: unhealthy", "health_status: healthy"]
    r = dock(env, "ps", "--filter", "health=sick")
    assert r.returncode != 0 and "Unrecognised filter value for health: sick" in r.stderr


def test_timeout_probe_is_recorded_with_exit_minus_one(env):
    ok(env, "run", "-d", "--name", "compat-hc-slow", "--health-cmd", "sleep 5", "--health-timeout", "1s",
       "--health-interval", "500ms", "--health-retries", "1", "busybox", "sleep", "60")
    _wait(env, "compat-hc-slow", "unhealthy")
    entry = _health(env, "compat-hc-slow")["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (1s)"


def test_image_healthcheck_is_honoured_and_no_healthcheck_disables_it(env, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=500ms --retries=1 CMD test -e /etc/ready\n"
                                    "RUN touch /etc/ready\n")
    r = dock(dict(env, DOCKER_BUILDKIT="0"), "build", "-q", "-t", "compat-hc-image", str(ctx), timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        ok(env, "run", "-d", "--name", "compat-hc-img", "compat-hc-image", "sleep", "60")
        _wait(env, "compat-hc-img", "healthy")
        ok(env, "run", "-d", "--name", "compat-hc-off", "--no-healthcheck", "compat-hc-image", "sleep", "60")
        time.sleep(1.0)
        assert ok(env, "inspect", "-f", "{{json .State.Health}}", "compat-hc-off").strip() == "null"
        assert ok(env, "inspect", "-f", "{{json .Config.Healthcheck.Test}}", "compat-hc-off").strip() == '["NONE"]'
        assert "compat-hc-off" in _ps(env, "health=none") and "compat-hc-img" not in _ps(env, "health=none")
        assert _ps(env)["compat-hc-off"].startswith("Up") and "(" not in _ps(env)["compat-hc-off"]
        # flags without a command keep the image's test: a shorter interval, same probe
        ok(env, "run", "-d", "--name", "compat-hc-fast", "--health-interval", "300ms", "compat-hc-image",
           "sleep", "60")
        cfg = json.loads(ok(env, "inspect", "-f", "{{json .Config.Healthcheck}}", "compat-hc-fast"))
        assert cfg["Test"] == ["CMD-SHELL", "test -e /etc/ready"] and cfg["Interval"] == 300 * 10 ** 6
        _wait(env, "compat-hc-fast", "healthy")
    finally:
        dock(env, "rm", "-f", "compat-hc-img", "compat-hc-off", "compat-hc-fast")
        dock(env, "rmi", "compat-hc-image")


def test_paused_container_is_unhealthy_until_probed_again(env):
    ok(env, "run", "-d", "--name", "compat-hc-pause", "--health-cmd", "true", "--health-interval", "300ms",
       "busybox", "sleep", "60")
    _wait(env, "compat-hc-pause", "healthy")
    ok(env, "pause", "compat-hc-pause")
    assert ok(env, "inspect", "-f", "{{.State.Health.Status}}", "compat-hc-pause").strip() == "unhealthy"
    assert _ps(env)["compat-hc-pause"].endswith("(Paused)")
    ok(env, "unpause", "compat-hc-pause")
    _wait(env, "compat-hc-pause", "healthy")
