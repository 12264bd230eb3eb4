"""`ls`, `status`, `remote ls` and `tunnel status` for scripts: --format (the container
commands' Go-template engine), --format json, -q; an unknown field gives docker's error."""

import json
import os
import subprocess
import sys

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.root


def _hb(env, *args):
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)


@pytest.fixture
def env(tmp_path, engine):
    e = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOME=str(tmp_path / "home"),
             HOSTBRIDGE_NATIVE_SOCKET=engine.sock, HOSTBRIDGE_NATIVE_ROOT=engine.root)
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "HOSTBRIDGE_DEBUG"):
        e.pop(k, None)
    return e


def test_ls_shows_native_and_formats(env, engine):
    r = _hb(env, "ls")
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[:2] == ["default", "native"], r.stdout + r.stderr
    assert _hb(env, "ls", "-q").stdout == "default\n"
    rows = [json.loads(line) for line in _hb(env, "ls", "--format", "json").stdout.splitlines()]
    assert rows == [{"Driver": "native", "Endpoint": "unix://" + engine.sock, "Mode": "native", "Name": "default",
                     "State": "running"}]
    assert _hb(env, "ls", "--format", "{{.Name}} {{.State}}").stdout == "default running\n"
    table = _hb(env, "ls", "--format", "table {{.Name}}\t{{.Mode}}").stdout.splitlines()
    assert table[0].split() == ["NAME", "MODE"] and table[1].split() == ["default", "native"]
    bad = _hb(env, "ls", "--format", "{{.Nope}}")
    theirs = subprocess.run(["docker", "ps", "--format", "{{.Nope}}"], capture_output=True, text=True,
                            env=dict(env, DOCKER_HOST="unix://" + engine.sock), timeout=60)
    assert bad.returncode != 0 and theirs.returncode != 0
    assert 'template: executing "" at <.Nope>: can\'t evaluate field Nope' in bad.stderr
    assert "can't evaluate field Nope" in theirs.stderr  # docker's own words for the same mistake


def test_status_format_and_exit_code(env, engine, tmp_path):
    r = _hb(env, "status", "--format", "json")
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert (st["Name"], st["Mode"], st["State"], st["Engine"], st["Socket"]) == (
        "default", "native", "running", True, engine.sock)
    assert _hb(env, "status", "--format", "{{.State}}").stdout == "running\n"
    down = dict(env, HOSTBRIDGE_NATIVE_SOCKET=str(tmp_path / "none.sock"), HOSTBRIDGE_NATIVE_ROOT=str(tmp_path / "r"))
    r = _hb(down, "status", "--format", "{{.State}} {{.Engine}}")
    assert (r.returncode, r.stdout) == (1, "stopped false\n")
