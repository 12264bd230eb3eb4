"""hostbridge.machines.native without an engine: command line, pidfiles, root check, missing engine."""

import os
import subprocess
import sys

import pytest

from hostbridge.errors import MachineError, NotRootError
from hostbridge.machines import native


def _engine(tmp_path, **kw):
    return native.NativeEngine(str(tmp_path / "root"), str(tmp_path / "run" / "d.sock"), **kw)


def test_daemon_argv_follows_the_contract(tmp_path):
    e = _engine(tmp_path, python="/usr/bin/python3")
    root = str(tmp_path / "root")
    assert e.daemon_argv() == ["/usr/bin/python3", "-m", "hostbridge.guest", "daemon", "--root", root,
                               "--socket", str(tmp_path / "run" / "d.sock"), "--pidfile", root + "/engine.pid",
                               "--log-file", root + "/engine.log", "--group", "hostbridge"]
    assert e.endpoint == "unix://%s/run/d.sock" % tmp_path
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    assert e.daemon_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == os.path.dirname(pkg_parent) + os.pathsep + "/x"


def test_pidfile_reading(tmp_path):
    pidfile = tmp_path / "engine.pid"
    assert native.read_pidfile(str(pidfile)) is None  # missing
    pidfile.write_text("garbage")
    assert native.read_pidfile(str(pidfile)) is None
    # A live process that is not the engine (a reused pid) does not count.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile.write_text(str(proc.pid))
        assert native.read_pidfile(str(pidfile)) is None
        assert native.read_pidfile(str(pidfile), marker=b"time.sleep") == proc.pid
    finally:
        proc.kill()
        proc.wait()
    # A dead pid is stale.
    assert native.read_pidfile(str(pidfile), marker=b"time.sleep") is None


def test_not_root_is_one_clear_line():
    with pytest.raises(NotRootError) as info:
        native.require_root(euid=1000)
    assert str(info.value) == "native mode needs root: run `sudo hostbridge up`"
    native.require_root(euid=0)


@pytest.mark.root
def test_missing_engine_is_a_clear_error(tmp_path):
    e = _engine(tmp_path, module="hostbridge.no_such_engine")
    with pytest.raises(MachineError, match="not installed"):
        e.start(timeout=1)
    assert not os.path.exists(e.pidfile)


@pytest.mark.root
def test_engine_that_dies_at_start_shows_its_log(tmp_path):
    # A real interpreter that cannot run the daemon (no such option): start must fail fast with the log.
    e = _engine(tmp_path, python=sys.executable)
    e.module = "hostbridge.machines"  # importable, has no daemon → the interpreter exits 1 with a message
    e._check_installed = lambda: None  # the module check is what this test bypasses on purpose
    with pytest.raises(MachineError) as info:
        e.start(timeout=10)
    assert "exited with status 1" in str(info.value)
    assert "hostbridge.machines" in str(info.value)  # python's own message, from the log


@pytest.mark.root
def test_stop_and_status_when_not_running(tmp_path):
    e = _engine(tmp_path)
    assert e.stop(timeout=1) is None
    st = e.status()
    assert (st["running"], st["responding"], st["pid"]) == (False, False, None)


def test_ping_socket_answers_false_when_nothing_listens(tmp_path):
    assert native.ping_socket(str(tmp_path / "none.sock"), timeout=0.5) is False
