"""Exec into a running container, and a shim that outlives whoever spawned it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hostbridge.guest.runtime.client import ShimClient

pytestmark = pytest.mark.root


def _running(bundles, **over):
    c = bundles.make(["sh", "-c", "echo $$ > /tmp/pid1; while :; do sleep 0.1; done"], **over)
    c.spawn()
    c.start()
    return c


def test_exec_sees_the_containers_namespaces(bundles):
    c = _running(bundles)
    r = bundles.exec(c, ["sh", "-c", "hostname; cat /tmp/pid1; echo $$; ls /proc | grep -c '^[0-9]'; "
                                     "grep NoNewPrivs /proc/self/status"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == c.config["hostname"]
    assert lines[1] == "1"  # the container's filesystem and pid namespace
    assert 1 < int(lines[2]) < 100
    assert int(lines[3]) <= 6
    assert lines[4].split() == ["NoNewPrivs:", "1"]
    # the exec'd process joined every cgroup the container's init is in (not only some)
    r = bundles.exec(c, ["sh", "-c", "cat /proc/1/cgroup; echo ---; cat /proc/self/cgroup"])
    init_groups, own_groups = r.stdout.decode().split("---\n")
    assert own_groups == init_groups, r.stdout
    assert ":pids:" in own_groups or own_groups.startswith("0::"), r.stdout


def test_exec_exit_code_user_and_errors(bundles):
    c = _running(bundles)
    assert bundles.exec(c, ["sh", "-c", "exit 42"]).returncode == 42
    r = bundles.exec(c, ["id", "-un"], user="ana")
    assert r.stdout == b"ana\n"
    r = bundles.exec(c, ["nosuch"])
    assert r.returncode == 127
    assert b'exec: "nosuch": executable file not found in $PATH' in r.stderr
    r = bundles.exec(c, ["sh", "-c", "kill -TERM $$"])
    assert r.returncode == 128 + signal.SIGTERM


def test_shim_survives_its_spawner(bundles, tmp_path):
    c = bundles.make(["sh", "-c", "echo started; while :; do sleep 0.1; done"])
    # a separate process spawns and starts, then is SIGKILLed: the shim must not care
    code = textwrap.dedent("""
        import os, sys, time
        sys.path.insert(0, %r)
        from hostbridge.guest.runtime.client import ShimClient
        c = ShimClient(%r)
        c.spawn(); c.start()
        print("up", flush=True)
        time.sleep(60)
    """ % (os.getcwd(), c.bundle))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"up\n"
    finally:
        p.kill()
        p.wait()
    fresh = ShimClient(c.bundle)
    assert fresh.state()["status"] == "running"
    s = fresh.attach(stdin=False, stdout=True, stderr=True)
    fresh.kill(signal.SIGKILL)
    s.settimeout(10)
    while s.recv(4096):
        pass
    assert fresh.wait(timeout=10)["exit_code"] == 137
    deadline = time.monotonic() + 5
    while os.path.exists(fresh.sock_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fresh.state() == {"pid": 0, "status": "exited"}
    assert fresh.wait()["exit_code"] == 137  # from exit.json once the shim has gone


def test_exec_with_a_pty_from_the_containers_devpts(bundles):
    # the engine opens the pty through the container's root, so `tty` names it as the
    # container sees it; the helper makes it the controlling terminal
    from hostbridge.guest.runtime.execproc import open_pty_in

    c = _running(bundles)
    pid = c.state()["pid"]
    master, slave, name = open_pty_in(pid)
    import json

    from hostbridge.guest import selfexec

    st = c.state()
    spec = {"pid": pid, "args": ["sh", "-c", "tty; [ -t 0 ] && echo interactive"], "env": [],
            "tty": True, "cgroup_procs": [os.path.join(p, "cgroup.procs")
                                          for p in sorted(set(st["cgroup_paths"].values()))]}
    p = subprocess.Popen(selfexec.argv("exec") + [json.dumps(spec)], env=selfexec.env(),
                         stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    assert p.wait(timeout=20) == 0
    out = b""
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    os.close(master)
    assert out.replace(b"\r\n", b"\n") == name.encode() + b"\ninteractive\n"


@pytest.mark.parametrize("init", ["built-in", "tini"])
def test_tty_with_init(bundles, request, init):
    init_path = request.getfixturevalue("tini") if init == "tini" else ""
    c = bundles.make(["sh", "-c", "tty; echo $$"], process={"tty": True, "init": True, "init_path": init_path})
    c.spawn()
    s = c.attach(stdin=False, stdout=True, stderr=True)
    c.start()
    s.settimeout(10)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    assert data.replace(b"\r\n", b"\n").split() == [b"/dev/pts/0", b"2"]
    assert c.wait(timeout=10)["exit_code"] == 0


def test_second_spawn_refused_and_restart_reuses_bundle(bundles):
    from hostbridge.guest.errors import RuntimeFailure

    c = _running(bundles)
    with pytest.raises(RuntimeFailure, match="already running"):
        ShimClient(c.bundle).spawn()
    c.kill(signal.SIGKILL)
    assert c.wait(timeout=10)["exit_code"] == 137
    deadline = time.monotonic() + 5
    while os.path.exists(c.sock_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    c.spawn()  # docker restart: same bundle, same rootfs dirs, a fresh shim
    assert c.read_exit() is None and c.state()["status"] == "created"
    c.start()
    assert c.state()["status"] == "running"
    c.kill(signal.SIGKILL)
    assert c.wait(timeout=10)["exit_code"] == 137


def test_exec_spec_on_fd_3(bundles):
    import json

    from hostbridge.guest import selfexec

    c = _running(bundles)
    st = c.state()
    spec = json.dumps({"pid": st["pid"], "args": ["hostname"], "env": [],
                       "cgroup_procs": [os.path.join(p, "cgroup.procs")
                                        for p in sorted(set(st["cgroup_paths"].values()))]})
    r, w = os.pipe()
    os.write(w, spec.encode())
    os.close(w)
    # a shell puts the spec pipe on fd 3, as an engine passing it would
    p = subprocess.run(["sh", "-c", 'exec "$@" 3<&0 </dev/null', "sh"] + selfexec.argv("exec"),
                       env=selfexec.env(), stdin=r, capture_output=True, timeout=20, check=False)
    os.close(r)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == c.config["hostname"]
