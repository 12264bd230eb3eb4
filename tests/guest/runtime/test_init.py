"""--init with a real static tini: pid 1 is `/sbin/docker-init -- CMD`, as with dockerd.

The expected exit codes and messages were taken from Debian's dockerd (docker.io 20.10/runc) on
this machine: `docker run --init busybox sh -c 'kill -TERM $$'` → 143, `kill -KILL $$` → 137,
`kill -INT $$` → 130, `exit 7` → 7, a missing command → 127 with tini's FATAL line, a file that
is not executable → 126; a volume over /sbin hides the init, so the start fails (127).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from hostbridge.guest.errors import RuntimeFailure
from hostbridge.guest.runtime import initbin

pytestmark = pytest.mark.root


def _init(tini, **more):
    return dict({"init": True, "init_path": tini}, **more)


def test_pid_1_is_docker_init_bound_read_only(bundles, tini, busybox_lower):
    script = "cat /proc/1/cmdline; echo; cat /proc/1/comm; touch /sbin/docker-init 2>&1; echo ppid=$PPID"
    c, rec, out, _ = bundles.run(["sh", "-c", script], process=_init(tini))
    cmdline, comm, touch, ppid = out.split("\n")[:4]
    assert cmdline == "\0".join(["/sbin/docker-init", "--", "sh", "-c", script]) + "\0"
    assert comm == "docker-init" and ppid == "ppid=1"
    assert "Read-only file system" in touch
    assert rec["exit_code"] == 0
    # the mount point is the container layer's (as `docker diff` shows A /sbin/docker-init);
    # the image layer is untouched
    upper = os.path.join(os.path.dirname(c.bundle), "upper", "sbin", "docker-init")
    assert os.path.isfile(upper) and os.path.getsize(upper) == 0
    assert not os.path.lexists(os.path.join(busybox_lower, "sbin", "docker-init"))


def test_tini_reaps_orphaned_zombies(bundles, tini):
    script = ("(sleep 0.2 &); (sleep 0.1 & exec sleep 0.05); sleep 0.8; "
              "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l; ps -o ppid,comm | grep -c ' sleep$'; true")
    _, rec, out, _ = bundles.run(["sh", "-c", script], process=_init(tini))
    assert out.split() == ["0", "0"]  # no zombie, no sleeper left
    assert rec["exit_code"] == 0


def test_stop_of_sleep_ends_promptly_through_tini(bundles, tini):
    c = bundles.make(["sleep", "1000"], process=_init(tini))
    c.spawn()
    c.start()
    # tini forks the command once it has blocked the signals it forwards: before that a TERM to
    # a pid 1 without a handler is dropped by the kernel (dockerd has the same window)
    children = "/proc/%d/task/%d/children" % ((c.state()["pid"],) * 2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not open(children).read().strip():
        time.sleep(0.01)
    c.kill(signal.SIGTERM)  # sleep has no handler: as pid 1 it would ignore TERM; under tini it dies
    assert c.wait(timeout=5)["exit_code"] == 128 + signal.SIGTERM


def test_tini_forwards_signals_to_the_command(bundles, tini):
    c = bundles.make(["sh", "-c", "trap 'echo got-usr1; exit 9' USR1; echo ready; while :; do sleep 0.1; done"],
                     process=_init(tini))
    c.spawn()
    c.start()
    bundles.wait_for_log(c, "ready")
    c.kill(signal.SIGUSR1)
    assert c.wait(timeout=10)["exit_code"] == 9
    assert any(r["log"] == "got-usr1\n" for r in bundles.log(c))


@pytest.mark.parametrize("script,code", [("exit 7", 7), ("kill -TERM $$", 143), ("kill -KILL $$", 137),
                                         ("kill -INT $$", 130), ("true", 0)])
def test_exit_codes_as_dockerd(bundles, tini, script, code):
    _, rec, _, _ = bundles.run(["sh", "-c", script], process=_init(tini))
    assert rec["exit_code"] == code


def test_command_errors_come_from_tini_as_with_dockerd(bundles, tini):
    _, rec, _, err = bundles.run(["nonexistent"], process=_init(tini))
    assert rec["exit_code"] == 127
    assert "[FATAL tini" in err and "exec nonexistent failed: No such file or directory" in err
    _, rec, _, err = bundles.run(["/etc/passwd"], process=_init(tini))
    assert rec["exit_code"] == 126 and "exec /etc/passwd failed: Permission denied" in err


def test_a_volume_over_sbin_hides_the_init_and_is_not_written(bundles, tini, tmp_path):
    vol = tmp_path / "sbin-volume"
    vol.mkdir()
    c = bundles.make(["true"], process=_init(tini),
                     mounts=[{"type": "bind", "source": str(vol), "destination": "/sbin", "options": ["rbind", "rw"]}])
    c.spawn()
    with pytest.raises(RuntimeFailure, match='exec: "/sbin/docker-init": stat /sbin/docker-init: no such file') as e:
        c.start()
    assert e.value.exit_code == 127
    assert os.listdir(vol) == []


def test_tini_runs_as_the_container_user(bundles, tini):
    _, rec, out, _ = bundles.run(["sh", "-c", "grep ^Uid /proc/1/status; id -u"],
                                 process=_init(tini, user="1000:1000"))
    assert out.split() == ["Uid:", "1000", "1000", "1000", "1000", "1000"]
    assert rec["exit_code"] == 0


def test_init_path_without_init_is_ignored(bundles, tini):
    _, rec, out, _ = bundles.run(["sh", "-c", "echo $$; test -e /sbin/docker-init || echo absent"],
                                 process={"init": False, "init_path": tini})
    assert out.split() == ["1", "absent"] and rec["exit_code"] == 0


# ---- the engine's choice: --init-path / daemon.json "init-path", else a search, else built-in ----

def _docker(engine, *args):
    import subprocess
    env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=os.path.join(engine.base, "docker-config"),
               DOCKER_CLI_HINTS="false")
    return subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def make_engine(tmp_path, busybox_rootfs_tar):
    """Start an engine with extra daemon flags (busybox imported); all of them closed after."""
    from tests.support.engine import Engine
    made = []

    def make(*args):
        e = Engine(tmp_path / ("engine%d" % len(made)), args=args)
        os.makedirs(e.base)
        made.append(e)
        e.start()
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        return e

    yield make
    for e in made:
        e.close()


def test_engine_without_an_init_binary_uses_the_builtin_init(make_engine, tmp_path):
    e = make_engine("--init-path", str(tmp_path / "no-such-init"))
    for _ in range(2):
        r = _docker(e, "run", "--rm", "--network", "none", "--init", "busybox", "sh", "-c",
                    "tr '\\0' ' ' </proc/1/cmdline; echo; echo $$; test -e /sbin/docker-init || echo absent")
        assert r.returncode == 0, r.stderr
        cmdline, pid, absent = r.stdout.splitlines()
        assert "hostbridge.guest" in cmdline and pid != "1" and absent == "absent"
    r = _docker(e, "run", "--rm", "--network", "none", "--init", "busybox", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 143
    status, info = e.request("GET", "/info")
    assert status == 200
    assert info["InitBinary"] == initbin.BUILTIN and info["InitCommit"] == {"ID": "N/A", "Expected": ""}
    assert any("built-in python init" in w and "no-such-init does not exist" in w for w in info["Warnings"])
    with open(e.log) as f:
        assert f.read().count("--init uses the built-in python init") == 1  # logged once


def test_engine_init_path_from_daemon_json_then_gone(make_engine, tmp_path, tini):
    import json
    import shutil

    own = str(tmp_path / "my-init")
    shutil.copy(tini, own)
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"init-path": own}))
    e = make_engine("--config-file", str(conf))
    status, info = e.request("GET", "/info")
    assert info["InitBinary"] == own and info["Warnings"] == []
    assert info["InitCommit"]["ID"] == initbin.InitBinary(tini).commit == info["InitCommit"]["Expected"]
    r = _docker(e, "run", "--rm", "--network", "none", "--init", "busybox", "cat", "/proc/1/cmdline")
    assert r.returncode == 0 and r.stdout == "/sbin/docker-init\0--\0cat\0/proc/1/cmdline\0"
    os.unlink(own)  # gone while the engine runs: the next --init falls back instead of failing
    r = _docker(e, "run", "--rm", "--network", "none", "--init", "busybox", "sh", "-c", "echo $$")
    assert r.returncode == 0 and r.stdout.strip() != "1"
    assert e.request("GET", "/info")[1]["InitBinary"] == initbin.BUILTIN


def test_engine_finds_a_static_tini_by_itself(engine, tini):
    status, info = engine.request("GET", "/info")
    assert status == 200 and initbin.why_unusable(info["InitBinary"]) is None
    assert os.path.basename(info["InitBinary"]) in initbin.NAMES
    assert set(info["InitCommit"]) == {"ID", "Expected"}
