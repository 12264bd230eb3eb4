"""docker logs: -f, --since, --until, --tail, -t; streaming promptness; clients that vanish."""

import re
import select
import socket
import subprocess
import time

import pytest

from .conftest import dock, ok

pytestmark = pytest.mark.root

_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (.*)$")


@pytest.fixture
def numbered(env):
    ok(env, "run", "--name", "compat-lg", "--network", "none", "busybox", "sh", "-c",
       "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    return "compat-lg"


def test_logs_streams_tail_timestamps(env, numbered):
    r = dock(env, "logs", numbered)
    assert r.stdout == "".join("out%d\n" % i for i in range(1, 6))
    assert r.stderr == "".join("err%d\n" % i for i in range(1, 6))
    # --tail counts records of both streams together, in the order the log holds them (the two
    # pipes are read apart, so err4 may land after out5): the last two of the merged, stamped log
    stamped = dock(env, "logs", "-t", numbered)
    records = sorted((line.split(" ", 1)[0], name, line.split(" ", 1)[1])
                     for name, text in (("out", stamped.stdout), ("err", stamped.stderr))
                     for line in text.splitlines())
    assert len(records) == 10
    want = {"out": "", "err": ""}
    for _, name, text in records[-2:]:
        want[name] += text + "\n"
    r = dock(env, "logs", "--tail", "2", numbered)
    assert (r.stdout, r.stderr) == (want["out"], want["err"])
    assert dock(env, "logs", "--tail", "0", numbered).stdout == ""
    lines = ok(env, "logs", "-t", numbered).splitlines()
    assert [_TS.match(x).group(1) for x in lines] == ["out%d" % i for i in range(1, 6)]


def test_logs_since_until(env):
    ok(env, "run", "-d", "--name", "compat-lsu", "--network", "none", "busybox", "sh", "-c",
       "echo early; sleep 1.5; echo late; sleep 1000")
    time.sleep(0.7)
    mid = time.time()
    time.sleep(1.5)
    assert ok(env, "logs", "--since", "%.3f" % mid, "compat-lsu") == "late\n"
    assert ok(env, "logs", "--until", "%.3f" % mid, "compat-lsu") == "early\n"
    assert ok(env, "logs", "--since", "10m", "compat-lsu") == "early\nlate\n"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mid)) + (".%03dZ" % ((mid % 1) * 1000))
    assert ok(env, "logs", "--until", stamp, "compat-lsu") == "early\n"


def test_follow_on_exited_container_returns_at_once(env, numbered):
    # returns by itself (a hang hits the timeout); how fast is bench/latency.py's figure
    r = dock(env, "logs", "-f", numbered, timeout=30)
    assert r.returncode == 0 and r.stdout == "".join("out%d\n" % i for i in range(1, 6))


def test_follow_streams_promptly_and_ends_with_the_container(env):
    # the container holds lines 3-6 back until the test has read line 2: a follow that only
    # delivers at the end (or buffers) never shows line 2 and fails the 10 s bound below
    ok(env, "run", "-d", "--name", "compat-lf", "--network", "none", "busybox", "sh", "-c",
       "echo line1; echo line2; i=0; while [ ! -e /tmp/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
       "for i in 3 4 5 6; do echo line$i; done")
    # unbuffered: select() sees the pipe, so no line may wait in a reader's buffer
    p = subprocess.Popen(["docker", "logs", "-f", "-t", "compat-lf"], env=env, stdout=subprocess.PIPE, bufsize=0)
    lines, seen_running = [], []
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            r, _, _ = select.select([p.stdout], [], [], 10)
            assert r, "no log line within 10 s"  # a hang-wide bound; the delay is bench/latency.py's
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line.decode().rstrip("\n").split(" ", 1)[1])
            if len(lines) == 2:  # streamed while it runs, not all at its end
                seen_running.append(ok(env, "inspect", "-f", "{{.State.Running}}", "compat-lf").strip())
                ok(env, "exec", "compat-lf", "touch", "/tmp/go")
        p.wait(10)  # the container exited: -f ends by itself
    finally:
        p.kill()
    assert lines == ["line%d" % i for i in range(1, 7)] and p.returncode == 0
    assert seen_running == ["true"]


def test_client_vanishing_mid_follow_leaves_engine_fine(engine, env):
    ok(env, "run", "-d", "--name", "compat-lgone", "--network", "none", "busybox", "sh", "-c",
       "while true; do echo tick; sleep 0.05; done")
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(engine.sock)
        s.sendall(b"GET /v1.44/containers/compat-lgone/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n\r\n")
        s.settimeout(5)
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
        s.close()
    time.sleep(0.5)
    assert engine.request("GET", "/_ping")[0] == 200
    assert ok(env, "inspect", "-f", "{{.State.Running}}", "compat-lgone") == "true\n"


def test_logs_of_a_tty_container_are_raw(env):
    ok(env, "run", "-t", "--name", "compat-ltty", "--network", "none", "busybox", "sh", "-c", "echo on-tty")
    r = subprocess.run(["docker", "logs", "compat-ltty"], env=env, capture_output=True, timeout=30)
    assert r.stdout == b"on-tty\r\n"  # the terminal's newline, no frame headers


def test_sdk_logs_stream(sdk):
    c = sdk.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.1; done"], detach=True,
                           name="compat-sdklog", network_mode="none")
    got = b"".join(c.logs(stream=True, follow=True))
    assert got == b"n1\nn2\nn3\n"
    assert c.logs(tail=1) == b"n3\n"
    assert c.logs(timestamps=True).split(b" ", 1)[1].startswith(b"n1\n")
