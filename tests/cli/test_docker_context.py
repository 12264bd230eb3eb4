"""Docker context hostbridge-NAME, checked with the stock docker CLI against a real engine."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.cli.conftest import REPO

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("docker"), reason="needs the stock docker CLI (docker.io)")]


def _env(tmp_path, **extra):
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOME=str(tmp_path / "home"),
               DOCKER_CONFIG=str(tmp_path / "docker-config"), DOCKER_CLI_HINTS="false", **extra)
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "DOCKER_HOST", "DOCKER_CONTEXT"):
        env.pop(k, None)
    return env


def _run(env, *argv):
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60, cwd=REPO)


def _hb(env, *args):
    return _run(env, sys.executable, "-m", "hostbridge.cli", *args)


def _listed(env):
    out = _run(env, "docker", "context", "ls", "--format", "{{.Name}} {{.DockerEndpoint}}")
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


def test_context_reaches_the_engine_and_is_removed(engine, tmp_path):
    env = _env(tmp_path, HOSTBRIDGE_NATIVE_SOCKET=engine.sock)
    made = _hb(env, "context", "create", "default")
    assert made.returncode == 0, made.stderr
    assert _listed(env)["hostbridge-default"] == engine.url
    ver = _run(env, "docker", "--context", "hostbridge-default", "version", "--format", "{{.Server.Os}}")
    assert (ver.returncode, ver.stdout.strip()) == (0, "linux"), ver.stderr
    ps = _run(env, "docker", "--context", "hostbridge-default", "run", "--rm", "busybox", "echo", "via-context")
    assert (ps.returncode, ps.stdout) == (0, "via-context\n"), ps.stderr
    _run(env, "docker", "context", "use", "hostbridge-default")
    gone = _hb(env, "context", "rm", "default")
    assert (gone.returncode, gone.stdout) == (0, "removed docker context hostbridge-default\n"), gone.stderr
    assert "hostbridge-default" not in _listed(env)
    # It was the current context: unselected, so plain `docker` commands still work.
    assert _run(env, "docker", "context", "show").stdout.strip() == "default"


def test_a_users_own_context_of_that_name_is_left_alone(engine, tmp_path):
    env = _env(tmp_path, HOSTBRIDGE_NATIVE_SOCKET=engine.sock)
    mine = _run(env, "docker", "context", "create", "hostbridge-default", "--docker", "host=unix:///srv/mine.sock")
    assert mine.returncode == 0, mine.stderr
    res = _hb(env, "context", "create", "default")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(
        "Error: a docker context named hostbridge-default exists and was not made by hostbridge"), res.stderr
    assert _hb(env, "context", "rm", "default").stdout == "no docker context hostbridge-default made by hostbridge\n"
    assert _listed(env)["hostbridge-default"] == "unix:///srv/mine.sock"


def test_native_up_makes_the_context_and_says_how_to_use_it(tmp_path):
    sock = str(tmp_path / "run" / "d.sock")
    env = _env(tmp_path, HOSTBRIDGE_NATIVE_ROOT=str(tmp_path / "root"), HOSTBRIDGE_NATIVE_SOCKET=sock,
               HOSTBRIDGE_NATIVE_START_TIMEOUT="30")
    try:
        up = _hb(env, "up")
        assert up.returncode == 0, up.stderr
        assert "docker context use hostbridge-default\n" in up.stdout
        assert _listed(env)["hostbridge-default"] == "unix://" + sock
        ver = _run(env, "docker", "--context", "hostbridge-default", "version", "--format", "{{.Server.Os}}")
        assert (ver.returncode, ver.stdout.strip()) == (0, "linux"), ver.stderr
        meta = _run(env, "docker", "context", "inspect", "hostbridge-default")
        assert json.loads(meta.stdout)[0]["Metadata"]["Description"] == "hostbridge machine default"
    finally:
        try:
            pid = int((tmp_path / "root" / "engine.pid").read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
