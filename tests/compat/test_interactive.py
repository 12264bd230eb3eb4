"""-it shells on a real pty, attach, exec, and the hijacked-connection details under them."""

import json
import socket
import struct
import time

import pytest

from .conftest import PtySession, dock, ok

pytestmark = pytest.mark.root


def test_run_it_shell_on_a_pty(env):
    s = PtySession(env, ["run", "-it", "--rm", "--name", "compat-it", "--network", "none", "busybox", "sh"])
    s.read_until(b"# ")
    s.send("echo $((6*7)); tty; stty size\n")
    out = s.read_until(b"/dev/pts/")
    s.read_until(b"24 80")
    assert b"42" in out
    s.send("exit 5\n")
    assert s.wait() == 5


def test_exec_it_shell_on_a_pty(env):
    ok(env, "run", "-d", "--name", "compat-eit", "--network", "none", "busybox", "sleep", "1000")
    s = PtySession(env, ["exec", "-it", "compat-eit", "sh"], rows=30, cols=100)
    s.read_until(b"# ")
    s.send("echo in-$((1+1)); stty size\n")
    s.read_until(b"in-2")
    s.read_until(b"30 100")
    s.send("exit 3\n")
    assert s.wait() == 3


def test_run_it_ctrl_c_reaches_the_foreground_process(env):
    s = PtySession(env, ["run", "-it", "--rm", "--network", "none", "busybox", "sh"])
    s.read_until(b"# ")
    s.send("sleep 30\n")
    time.sleep(0.5)
    s.send("\x03")  # ^C interrupts sleep, not the shell
    s.send("echo alive\n")
    s.read_until(b"alive\r\n")
    s.send("exit\n")
    assert s.wait() == 0


def test_exec_variants_and_exit_codes(env):
    ok(env, "run", "-d", "--name", "compat-ex", "--network", "none", "busybox", "sleep", "1000")
    assert dock(env, "exec", "compat-ex", "sh", "-c", "echo o; echo e >&2; exit 7").returncode == 7
    r = dock(env, "exec", "compat-ex", "sh", "-c", "echo o; echo e >&2")
    assert (r.stdout, r.stderr) == ("o\n", "e\n")
    assert ok(env, "exec", "-d", "compat-ex", "sh", "-c", "sleep 0.2; echo bg > /tmp/bg") == ""
    time.sleep(0.6)
    assert ok(env, "exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", "compat-ex", "sh", "-c",
              "echo $X; pwd; id -un; cat bg") == "1\n/tmp\nnobody\nbg\n"
    assert ok(env, "exec", "-i", "compat-ex", "tr", "a-z", "A-Z", input="shout\n") == "SHOUT\n"
    r = dock(env, "exec", "compat-ex", "nosuch")
    assert r.returncode == 127 and "executable file not found" in r.stderr + r.stdout
    r = dock(env, "exec", "-t", "compat-ex", "sh", "-c", "exit 4")
    assert r.returncode == 4
    # the exec'd processes are the container's: top shows them
    ok(env, "exec", "-d", "compat-ex", "sleep", "123")
    time.sleep(0.3)
    assert "sleep 123" in ok(env, "top", "compat-ex")


def test_exec_into_paused_or_stopped_container_is_refused(env):
    ok(env, "run", "-d", "--name", "compat-exp", "--network", "none", "busybox", "sleep", "1000")
    ok(env, "pause", "compat-exp")
    r = dock(env, "exec", "compat-exp", "true")
    assert r.returncode != 0 and "is paused, unpause the container before exec" in r.stderr
    ok(env, "unpause", "compat-exp")
    ok(env, "kill", "compat-exp")
    ok(env, "wait", "compat-exp")
    r = dock(env, "exec", "compat-exp", "true")
    assert r.returncode != 0 and "is not running" in r.stderr


def test_attach_to_running_container(env):
    import subprocess
    ok(env, "run", "-d", "--name", "compat-att", "--network", "none", "busybox", "sh", "-c",
       "i=0; while true; do i=$((i+1)); echo n$i; sleep 0.1; done")
    p = subprocess.Popen(["docker", "attach", "--no-stdin", "compat-att"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        second = p.stdout.readline()
    finally:
        p.kill()
        p.wait()
    assert first.startswith("n") and int(second[1:]) == int(first[1:]) + 1
    assert ok(env, "inspect", "-f", "{{.State.Running}}", "compat-att") == "true\n"


def test_attach_with_stdin_then_exit(env):
    ok(env, "create", "-i", "--name", "compat-atti", "busybox", "sh", "-c",
       "while read l; do echo got:$l; [ $l = quit ] && exit 2; done")
    ok(env, "start", "compat-atti")
    r = dock(env, "attach", "compat-atti", input="one\nquit\n", timeout=20)
    assert r.stdout == "got:one\ngot:quit\n" and r.returncode == 2


def test_attach_eof_keeps_stdin_open_without_stdin_once(env):
    ok(env, "run", "-d", "-i", "--name", "compat-atto", "--network", "none", "busybox", "sh", "-c",
       "while read l; do echo got:$l; done; echo stdin-closed")
    import subprocess
    p = subprocess.Popen(["docker", "attach", "compat-atto"], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    p.stdin.write(b"one\n")
    p.stdin.close()
    time.sleep(1)
    p.kill()
    p.wait()
    assert "stdin-closed" not in ok(env, "logs", "compat-atto")
    assert ok(env, "inspect", "-f", "{{.State.Running}}", "compat-atto") == "true\n"


# ---- the raw protocol --------------------------------------------------------------------------

def _raw_post(engine, path, body=None, upgrade=True):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(engine.sock)
    data = json.dumps(body).encode() if body is not None else b""
    head = "POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        path, len(data))
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    return s


def _read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        assert chunk, "connection closed in the headers: %r" % buf
        buf += chunk
    return buf.decode()


def _read_frames(s, until=None, timeout=10):
    """Demultiplex 8-byte-framed output until EOF (or ``until`` appears); {1: bytes, 2: bytes}."""
    out, buf = {1: b"", 2: b""}, b""
    s.settimeout(timeout)
    while True:
        while len(buf) >= 8:
            st, n = struct.unpack(">BxxxL", buf[:8])
            if len(buf) < 8 + n:
                break
            out[st] += buf[8:8 + n]
            buf = buf[8 + n:]
        if until is not None and until in out[1]:
            return out
        chunk = s.recv(65536)
        if not chunk:
            return out
        buf += chunk


def test_hijack_is_exactly_101_upgraded_and_loses_no_early_output(engine, env):
    ok(env, "create", "--name", "compat-hj", "busybox", "sh", "-c", "echo first; echo err >&2; echo last")
    s = _raw_post(engine, "/v1.44/containers/compat-hj/attach?stream=1&stdout=1&stderr=1")
    head = _read_head(s)
    assert head.startswith("HTTP/1.1 101 UPGRADED\r\n")
    assert "Content-Type: application/vnd.docker.multiplexed-stream" in head
    ok(env, "start", "compat-hj")  # output arrives right after the 101
    out = _read_frames(s)
    s.close()
    assert out == {1: b"first\nlast\n", 2: b"err\n"}


def test_stdin_half_close_keeps_output_flowing(engine, env):
    ok(env, "create", "-i", "--name", "compat-hc", "busybox", "sh", "-c", "cat; sleep 0.3; echo after")
    s = _raw_post(engine, "/v1.44/containers/compat-hc/attach?stream=1&stdin=1&stdout=1&stderr=1")
    assert _read_head(s).startswith("HTTP/1.1 101 UPGRADED")
    ok(env, "start", "compat-hc")
    s.sendall(b"echoed\n")
    s.shutdown(socket.SHUT_WR)
    out = _read_frames(s)
    s.close()
    assert out[1] == b"echoed\nafter\n"


def test_client_vanishing_mid_attach_leaves_engine_and_container_fine(engine, env):
    ok(env, "run", "-d", "-i", "--name", "compat-gone", "--network", "none", "busybox", "sh", "-c",
       "while true; do echo tick; sleep 0.05; done")
    for _ in range(3):
        s = _raw_post(engine, "/v1.44/containers/compat-gone/attach?stream=1&stdin=1&stdout=1&stderr=1")
        _read_head(s)
        _read_frames(s, until=b"tick")
        s.close()  # no half-close, no goodbye
    time.sleep(0.5)
    assert ok(env, "inspect", "-f", "{{.State.Running}}", "compat-gone") == "true\n"
    assert engine.request("GET", "/_ping")[0] == 200
    assert "tick" in ok(env, "logs", "--tail", "1", "compat-gone")


def test_exec_hijack_and_exit_code(engine, env):
    ok(env, "run", "-d", "--name", "compat-xh", "--network", "none", "busybox", "sleep", "1000")
    status, body = engine.request("POST", "/containers/compat-xh/exec",
                                  {"Cmd": ["sh", "-c", "echo hi; exit 9"], "AttachStdout": True, "AttachStderr": True})
    assert status == 201
    s = _raw_post(engine, "/v1.44/exec/%s/start" % body["Id"], {"Detach": False, "Tty": False})
    assert _read_head(s).startswith("HTTP/1.1 101 UPGRADED")
    assert _read_frames(s)[1] == b"hi\n"
    s.close()
    end = time.monotonic() + 5
    while time.monotonic() < end:
        info = engine.request("GET", "/exec/%s/json" % body["Id"])[1]
        if not info["Running"]:
            break
        time.sleep(0.05)
    assert info["ExitCode"] == 9 and info["Running"] is False
