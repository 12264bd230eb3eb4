"""The container process: exit codes, signals, exec errors, json-file logs, --init, user/cwd/env."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from hostbridge.guest.errors import RuntimeFailure

pytestmark = pytest.mark.root

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _started(bundles, args, **over):
    c = bundles.make(args, **over)
    c.spawn()
    c.start()
    return c


def test_exit_code_propagates(bundles):
    _, rec, _, _ = bundles.run(["sh", "-c", "exit 3"])
    assert rec["exit_code"] == 3 and rec["oom_killed"] is False and rec["error"] == ""
    assert RFC3339NANO.match(rec["finished_at"])


def test_killed_by_signal_is_128_plus_n(bundles):
    _, rec, _, _ = bundles.run(["sh", "-c", "kill -USR1 $$; sleep 5"], process={"init": True})
    assert rec["exit_code"] == 128 + signal.SIGUSR1


def test_sigterm_ignored_sigkill_ends(bundles):
    c = _started(bundles, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"])
    bundles.wait_for_log(c, "ready")
    c.kill(signal.SIGTERM)
    with pytest.raises(RuntimeFailure):
        c.wait(timeout=1.0)
    assert c.state()["status"] == "running"
    c.kill(signal.SIGKILL)
    assert c.wait(timeout=10)["exit_code"] == 137
    assert c.state()["status"] == "exited"
    with pytest.raises(RuntimeFailure, match="not running"):
        c.kill(signal.SIGKILL)


def test_executable_not_found(bundles):
    c = bundles.make(["nosuch"])
    c.spawn()
    with pytest.raises(RuntimeFailure) as ei:
        c.start()
    assert str(ei.value) == 'exec: "nosuch": executable file not found in $PATH'
    assert ei.value.exit_code == 127
    rec = c.wait(timeout=10)
    assert rec["exit_code"] == 127 and "executable file not found" in rec["error"]


def test_permission_denied_is_126(bundles):
    c = bundles.make(["/etc/passwd"])
    c.spawn()
    with pytest.raises(RuntimeFailure, match='exec: "/etc/passwd": permission denied') as ei:
        c.start()
    assert ei.value.exit_code == 126
    assert c.wait(timeout=10)["exit_code"] == 126


def test_setup_failure_fails_spawn(bundles, tmp_path):
    c = bundles.make(["true"], mounts=[{"type": "bind", "source": str(tmp_path / "missing"),
                                        "destination": "/x", "options": []}])
    with pytest.raises(RuntimeFailure, match="container setup failed"):
        c.spawn()
    assert not os.path.exists(c.sock_path)
    from hostbridge.guest.runtime.cgroups import Cgroup

    assert not any(os.path.exists(d) for d in Cgroup(c.config["cgroup"]["name"]).dirs())


def test_json_file_log_lines(bundles):
    c, rec, _, _ = bundles.run(["sh", "-c", "echo out1; echo err1 >&2; printf 'two\\nlines\\n'; printf tail"])
    assert rec["exit_code"] == 0
    lines = bundles.log(c)
    got = [(r["stream"], r["log"]) for r in lines]
    assert ("stdout", "out1\n") in got and ("stderr", "err1\n") in got
    assert [g for g in got if g[0] == "stdout"] == [("stdout", "out1\n"), ("stdout", "two\n"),
                                                    ("stdout", "lines\n"), ("stdout", "tail")]
    assert all(RFC3339NANO.match(r["time"]) for r in lines)
    with open(c.config["log_path"]) as f:
        raw = f.readline()
    assert list(json.loads(raw)) == ["log", "stream", "time"]


def test_long_partial_line_is_split_at_16k(bundles):
    c, _, _, _ = bundles.run(["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a"])
    sizes = [len(r["log"]) for r in bundles.log(c)]
    assert sizes == [16384, 16384, 40000 - 32768]


def test_user_env_and_cwd(bundles):
    c, rec, out, _ = bundles.run(["sh", "-c", "id -u; id -g; pwd; echo $HOME; echo $PATH; echo $HOSTNAME"],
                                 process={"user": "33:100", "cwd": "/work/dir", "env": ["A=1"]})
    assert rec["exit_code"] == 0
    lines = out.splitlines()
    assert lines[:3] == ["33", "100", "/work/dir"]
    assert lines[3] == "/var/www"
    assert lines[4] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert lines[5] == c.config["hostname"]


def test_unknown_user_fails_start(bundles):
    c = bundles.make(["true"], process={"user": "nosuchuser"})
    c.spawn()
    with pytest.raises(RuntimeFailure, match="unable to find user nosuchuser"):
        c.start()


def test_init_is_pid_1_and_reaps(bundles):
    # the orphaned grandchild exits and must be reaped by init, not left a zombie
    script = ("cat /proc/1/cmdline | tr '\\0' ' '; echo; echo ppid=$PPID; "
              "(sleep 0.2 &) ; sleep 0.6; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l")
    _, rec, out, _ = bundles.run(["sh", "-c", script], process={"init": True})
    lines = out.splitlines()
    assert "hostbridge.guest" in lines[0]  # the in-memory init forked from the shim (or zygote)
    assert lines[1] == "ppid=1" and lines[2] == "0"
    assert rec["exit_code"] == 0


def test_init_forwards_sigterm(bundles):
    c = _started(bundles, ["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; "
                                       "while :; do sleep 0.1; done"], process={"init": True})
    bundles.wait_for_log(c, "ready")
    c.kill(signal.SIGTERM)
    assert c.wait(timeout=10)["exit_code"] == 7
    assert any(r["log"] == "got-term\n" for r in bundles.log(c))


def test_long_bundle_path_and_many_layers(bundles, busybox_lower, tmp_path):
    import os

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    layers = []
    for i in range(45):  # 45 absolute lower dirs overflow a page of mount options
        d = tmp_path / "layers" / ("%064x" % i) / "diff"
        d.mkdir(parents=True)
        (d / ("f%d" % i)).write_text("%d\n" % i)
        layers.append(str(d))
    os.symlink(busybox_lower, str(tmp_path / "layers" / "busybox"))
    c = bundles.make(["sh", "-c", "cat /f0 /f44"],
                     rootfs={"lower": layers + [str(tmp_path / "layers" / "busybox")]})
    long_bundle = str(deep / "bundle")
    os.rename(c.bundle, long_bundle)
    from hostbridge.guest.runtime.client import ShimClient

    lc = ShimClient(long_bundle)
    lc.config = dict(c.config, log_path=os.path.join(long_bundle, os.path.basename(c.config["log_path"])))
    with open(os.path.join(long_bundle, "config.json"), "w") as f:
        import json

        json.dump(lc.config, f)
    bundles.made.append(lc)
    assert len(lc.sock_path) > 108
    lc.spawn()
    lc.start()
    assert lc.wait(timeout=20)["exit_code"] == 0
    assert [r["log"] for r in bundles.log(lc)] == ["0\n", "44\n"]


def test_process_starts_with_default_signal_dispositions(bundles):
    # python ignores SIGPIPE and SIGXFSZ for itself; the container's process must not inherit that
    _, _, out, _ = bundles.run(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
    assert [int(line.split()[1], 16) for line in out.splitlines()] == [0, 0]
    c = bundles.make(["sh", "-c", "while :; do sleep 1; done"])
    c.spawn()
    c.start()
    r = bundles.exec(c, ["grep", "^SigIgn", "/proc/self/status"])
    assert int(r.stdout.split()[1], 16) == 0
