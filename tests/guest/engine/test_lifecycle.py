"""The engine end to end, driven by the stock docker CLI (the oracle) and the raw API."""

import json
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.root


def dock(env, *args, input=None, timeout=60):
    return subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True,
                          input=input, timeout=timeout)


def test_run_rm_prints_and_leaves_nothing(docker_env):
    r = dock(docker_env, "run", "--rm", "--name", "hello-rm", "busybox", "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    assert "hello-rm" not in dock(docker_env, "ps", "-a", "--format", "{{.Names}}").stdout


def test_exit_code_and_streams(docker_env):
    r = dock(docker_env, "run", "--name", "codes", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n" and r.stderr == "err\n"
    logs = dock(docker_env, "logs", "codes")
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    state = json.loads(dock(docker_env, "inspect", "codes").stdout)[0]["State"]
    assert state["ExitCode"] == 3 and state["Status"] == "exited" and not state["Running"]
    dock(docker_env, "rm", "codes")


def test_detached_container_with_limits_env_and_workdir(docker_env, engine):
    r = dock(docker_env, "run", "-d", "--name", "web", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50",
             "-e", "A=1", "-w", "/tmp", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    try:
        cid = r.stdout.strip()
        ps = dock(docker_env, "ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
        assert "%s web Up" % cid[:12] in ps
        assert cid[:12] in dock(docker_env, "ps", "-q").stdout.split()  # other tests' containers may run too
        out = dock(docker_env, "exec", "web", "sh", "-c", "echo $A; pwd; cat /proc/1/cmdline | tr '\\0' ' '").stdout
        assert out.splitlines() == ["1", "/tmp", "sleep 1000 "]
        hc = json.loads(dock(docker_env, "inspect", "web").stdout)[0]["HostConfig"]
        assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 500000000 and hc["PidsLimit"] == 50
        assert hc["LogConfig"]["Type"] == "json-file"
    finally:
        dock(docker_env, "rm", "-f", "web")


def test_host_processes_and_hostname_are_the_containers_own(docker_env):
    r = dock(docker_env, "run", "--rm", "--hostname", "boxy", "busybox", "sh", "-c",
             "hostname; ls /proc | grep -c '^[0-9]'; grep -c overlay /proc/mounts")
    lines = r.stdout.split()
    assert lines[0] == "boxy"
    assert int(lines[1]) <= 3  # sh, ls, grep: no host process is visible
    assert int(lines[2]) == 1


def test_writes_stay_in_their_container(docker_env):
    dock(docker_env, "run", "--name", "writer", "busybox", "sh", "-c", "echo mine > /etc/marker")
    r = dock(docker_env, "run", "--rm", "busybox", "cat", "/etc/marker")
    assert r.returncode != 0 and "No such file" in r.stderr
    assert dock(docker_env, "diff", "writer").stdout.splitlines() == ["C /etc", "A /etc/marker"]
    dock(docker_env, "rm", "writer")


def test_oom_kill_is_reported(docker_env):
    r = dock(docker_env, "run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
             "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
             "while true; do x=$x$x; done", timeout=120)
    assert r.returncode == 137
    state = json.loads(dock(docker_env, "inspect", "hog").stdout)[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    dock(docker_env, "rm", "hog")


def test_stop_of_a_process_ignoring_sigterm_ends_within_timeout(docker_env):
    dock(docker_env, "run", "-d", "--name", "stubborn", "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 1; done")
    t = time.monotonic()
    r = dock(docker_env, "stop", "-t", "1", "stubborn")
    took = time.monotonic() - t
    assert r.returncode == 0 and took < 9  # its 1 s, not the default 10 s (wide: a loaded machine)
    st = json.loads(dock(docker_env, "inspect", "stubborn").stdout)[0]["State"]
    assert st["ExitCode"] == 137
    dock(docker_env, "rm", "stubborn")


def test_kill_with_signal_and_restart(docker_env):
    dock(docker_env, "run", "-d", "--name", "kk", "busybox", "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    assert dock(docker_env, "kill", "-s", "USR1", "kk").returncode == 0
    assert dock(docker_env, "wait", "kk").stdout.strip() == "42"
    assert dock(docker_env, "restart", "-t", "1", "kk").returncode == 0
    assert dock(docker_env, "inspect", "-f", "{{.State.Running}}", "kk").stdout.strip() == "true"
    dock(docker_env, "rm", "-f", "kk")


def test_bad_input_gets_docker_wording(engine):
    s, body = engine.request("POST", "/containers/create", {"Image": "nosuch:1"})
    assert s == 404 and body["message"] == "No such image: nosuch:1"
    s, body = engine.request("GET", "/containers/nosuch/json")
    assert s == 404 and body["message"] == "No such container: nosuch"
    s, body = engine.request("POST", "/containers/create", b"{not json", {"Content-Type": "application/json"})
    assert s == 400 and "invalid JSON" in body["message"]
    s, body = engine.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Memory": "lots"}})
    assert s == 400 and "Memory" in body["message"]
    s, body = engine.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": "/dev/sda"}]}})
    assert s == 400 and "--device" in body["message"]
    s, body = engine.request("GET", "/v1.44/nowhere")
    assert s == 404 and body["message"] == "page not found"
    s, body = engine.request("GET", "/v1.12/version")
    assert s == 400 and "too old" in body["message"]
    s, _ = engine.request("POST", "/containers/create?name=dup", {"Image": "busybox", "Cmd": ["true"]})
    assert s == 201
    s, body = engine.request("POST", "/containers/create?name=dup", {"Image": "busybox", "Cmd": ["true"]})
    assert s == 409 and 'The container name "/dup" is already in use' in body["message"]
    engine.request("DELETE", "/containers/dup")
    assert engine.request("GET", "/_ping")[0] == 200  # still serving


def test_version_prefixes_and_ping_headers(engine):
    for prefix in ("", "/v1.24", "/v1.41", "/v1.44"):
        s, body = engine.request("GET", prefix + "/version")
        assert s == 200 and body["ApiVersion"] == "1.44" and body["MinAPIVersion"] == "1.24"
    conn = __import__("tests.support.engine", fromlist=["x"]).UnixHTTPConnection(engine.sock)
    conn.request("HEAD", "/_ping")
    r = conn.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("Api-Version") == "1.44" and r.getheader("Ostype") == "linux"
    conn.close()


def test_missing_executable_is_127(docker_env):
    r = dock(docker_env, "run", "--rm", "busybox", "nosuchcmd")
    assert r.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr


def test_save_rmi_load_round_trips_by_id(docker_env, engine, tmp_path):
    dock(docker_env, "tag", "busybox", "roundtrip:1")
    iid = dock(docker_env, "inspect", "-f", "{{.Id}}", "roundtrip:1").stdout.strip()
    out = tmp_path / "img.tar"
    assert dock(docker_env, "save", "-o", str(out), "roundtrip:1").returncode == 0
    assert dock(docker_env, "rmi", "roundtrip:1").returncode == 0
    r = dock(docker_env, "load", "-i", str(out))
    assert r.returncode == 0 and "Loaded image: roundtrip:1" in r.stdout
    assert dock(docker_env, "inspect", "-f", "{{.Id}}", "roundtrip:1").stdout.strip() == iid
    dock(docker_env, "rmi", "roundtrip:1")


def test_corrupt_load_leaves_store_unchanged(docker_env, engine, tmp_path):
    before = dock(docker_env, "images", "-a", "-q", "--no-trunc").stdout
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x1f\x8b garbage" * 100)
    r = dock(docker_env, "load", "-i", str(bad))
    assert r.returncode != 0 and r.stderr.strip()
    assert dock(docker_env, "images", "-a", "-q", "--no-trunc").stdout == before
    assert engine.request("GET", "/_ping")[0] == 200


def test_engine_restart_keeps_images_and_containers(engine, docker_env):
    dock(docker_env, "run", "-d", "--name", "survivor", "busybox", "sleep", "1000")
    dock(docker_env, "run", "--name", "done", "busybox", "sh", "-c", "exit 4")
    images = dock(docker_env, "images", "-q").stdout
    engine.stop()
    engine.start()
    try:
        assert dock(docker_env, "images", "-q").stdout == images
        st = json.loads(dock(docker_env, "inspect", "survivor", "done").stdout)
        assert st[0]["State"]["Running"] is True
        assert st[1]["State"]["ExitCode"] == 4
        assert dock(docker_env, "exec", "survivor", "true").returncode == 0
        # a container whose process died while the engine was down is marked exited
        pid = st[0]["State"]["Pid"]
        engine.stop()
        os.kill(pid, 9)
        time.sleep(0.3)
        engine.start()
        st = json.loads(dock(docker_env, "inspect", "survivor").stdout)[0]["State"]
        assert st["Running"] is False and st["Status"] == "exited" and st["ExitCode"] == 137
    finally:
        dock(docker_env, "rm", "-f", "survivor", "done")
