"""``hostbridge up / status / down`` in native mode with the real engine on temp paths."""

import os
import signal
import subprocess
import sys

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.root


@pytest.fixture
def native(tmp_path):
    """Environment pointing native mode at temp dirs; stops any engine the test left running."""
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOME=str(tmp_path / "home"),
               HOSTBRIDGE_NATIVE_ROOT=str(tmp_path / "root"), HOSTBRIDGE_NATIVE_SOCKET=str(tmp_path / "run" / "d.sock"),
               HOSTBRIDGE_NATIVE_START_TIMEOUT="30")
    for k in ("HOSTBRIDGE_HOST", "HOSTBRIDGE_MACHINE", "HOSTBRIDGE_DEBUG"):
        env.pop(k, None)
    yield env
    pidfile = tmp_path / "root" / "engine.pid"
    try:
        pid = int(pidfile.read_text())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if b"hostbridge.guest" in f.read():
                os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def _hb(env, *args):
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)


def test_up_status_down(native, tmp_path):
    sock = native["HOSTBRIDGE_NATIVE_SOCKET"]
    r = _hb(native, "up")
    assert r.returncode == 0, r.stderr
    assert "export DOCKER_HOST=unix://%s\n" % sock in r.stdout
    pid = int((tmp_path / "root" / "engine.pid").read_text())
    assert "running (pid %d)" % pid in r.stdout
    again = _hb(native, "up")
    assert again.returncode == 0 and "already running (pid %d)" % pid in again.stdout
    st = _hb(native, "status")
    assert st.returncode == 0 and "state:    running" in st.stdout
    ls = _hb(native, "ls")
    assert ls.returncode == 0, ls.stderr
    row = [line.split() for line in ls.stdout.splitlines()[1:] if line.startswith("default ")]
    assert row and row[0][:4] == ["default", "native", "native", "running"] and row[0][-1] == "unix://" + sock
    ps = _hb(native, "ps", "-a")  # the default machine's endpoint is native's socket
    assert ps.returncode == 0 and ps.stdout.startswith("CONTAINER ID"), ps.stderr
    down = _hb(native, "down")
    assert (down.returncode, down.stdout) == (0, "Stopped the hostbridge engine (pid %d).\n" % pid)
    assert not os.path.exists("/proc/%d" % pid) or b"hostbridge" not in open("/proc/%d/cmdline" % pid, "rb").read()
    assert _hb(native, "down").stdout == "The hostbridge engine is not running.\n"
    st = _hb(native, "status")
    assert st.returncode == 1 and "state:    stopped" in st.stdout
    assert (tmp_path / "root" / "containers").is_dir()  # state kept


def test_engine_failing_to_start_shows_its_log(native, tmp_path):
    native["HOSTBRIDGE_NATIVE_SOCKET"] = str(tmp_path / ("x" * 120) / "d.sock")  # too long for AF_UNIX
    r = _hb(native, "up")
    assert r.returncode == 1
    assert "the hostbridge engine exited with status" in r.stderr
    assert "last lines of %s" % (tmp_path / "root" / "engine.log") in r.stderr
    # nothing is left half-started: the socket is made before the engine's bridge and rules
    from hostbridge.guest.network.manager import instance_names
    prefix, bridge = instance_names(str(tmp_path / "root"))
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0, bridge
    assert prefix not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout


def test_uncreatable_dirs_are_one_line(native, tmp_path):
    (tmp_path / "afile").write_text("")
    native["HOSTBRIDGE_NATIVE_ROOT"] = str(tmp_path / "afile" / "root")
    r = _hb(native, "up")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and ("cannot create" in lines[-1] or "not installed" in lines[-1])


def test_up_progress_plain_and_on_a_terminal(native, tmp_path):
    import pty
    import select

    r = _hb(native, "up")  # stderr is a pipe: plain lines
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "[engine] starting the hostbridge engine…"
    assert lines[1].startswith("[engine] starting the hostbridge engine… done in ") and lines[1].endswith(" s")
    _hb(native, "down")
    # On a terminal: one line redrawn in place, ending with the time it took.
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hostbridge.cli", "up"], env=native, stdout=subprocess.PIPE,
                            stderr=slave, cwd=REPO)
    os.close(slave)
    seen = b""
    for _ in range(600):  # bounded: 60 s at most
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(60)
    os.close(master)
    assert proc.returncode == 0
    text = seen.decode()
    assert text.startswith("[engine] starting the hostbridge engine… 0 s")
    assert "\r\x1b[2K[engine] starting the hostbridge engine… done in " in text and text.endswith(" s\r\n")
