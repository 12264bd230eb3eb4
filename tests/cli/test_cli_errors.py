"""Errors a user meets: one line by default, the traceback with -v or HOSTBRIDGE_DEBUG=1."""

import os
import subprocess
import sys


from tests.cli.conftest import REPO


def _hb(*args, env_extra=None, tmp):
    env = dict(os.environ, HOSTBRIDGE_HOME=str(tmp), PYTHONPATH=REPO)
    env.pop("HOSTBRIDGE_DEBUG", None)
    env.pop("HOSTBRIDGE_HOST", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), capture_output=True, text=True,
                          env=env, timeout=30, cwd=REPO)


def test_unreachable_engine_is_one_line(tmp_path):
    sock = tmp_path / "nobody.sock"
    r = _hb("--host", "unix://%s" % sock, "ps", tmp=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cannot connect to the hostbridge engine at unix://%s" % sock in lines[0]
    assert "hostbridge up" in lines[0]


def test_verbose_and_debug_show_the_traceback(tmp_path):
    sock = "unix://%s/nobody.sock" % tmp_path
    assert "Traceback" in _hb("-v", "--host", sock, "ps", tmp=tmp_path).stderr
    assert "Traceback" in _hb("--host", sock, "ps", env_extra={"HOSTBRIDGE_DEBUG": "1"}, tmp=tmp_path).stderr


def test_bad_config_is_one_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("timeout = 'soon'\n")
    r = _hb("ps", tmp=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: timeout (from %s) must be a number, not 'soon'" % (
        tmp_path / "config" / "config.toml")


def test_bad_flag_value_is_one_line(tmp_path):
    r = _hb("--host", "unix:///tmp/x.sock", "run", "-m", "lots", "busybox", tmp=tmp_path)
    assert r.returncode == 125  # docker run's status for its own failures
    assert r.stderr.strip() == "Error: invalid size: 'lots' (use a number with an optional unit: b, k, m, g)"


def test_unknown_machine(tmp_path):
    r = _hb("--machine", "ghost", "ps", tmp=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("Error: no machine named 'ghost'")


def test_help_does_not_import_requests_or_paramiko(tmp_path):
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "hostbridge.cli", "version", "--help"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO, timeout=30)
    assert r.returncode == 0 and "Usage:" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "click" in imported
    assert not imported & {"requests", "urllib3", "paramiko"}


def test_client_never_imports_paramiko(tmp_path):
    code = "import sys, hostbridge.cli.main, hostbridge.client, hostbridge.cli.run; print('paramiko' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO, timeout=30)
    assert r.stdout == "False\n", r.stderr


def test_native_up_as_non_root_is_one_clear_line(tmp_path, monkeypatch, capsys):
    # A real unprivileged user cannot reach this machine's Python (it lives under /root, mode 0700),
    # so the CLI runs in-process with its effective uid reported as 1000.
    from hostbridge.cli.main import main

    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["up"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "Error: native mode needs root: run `sudo hostbridge up`"


def test_config_commands(tmp_path):
    assert _hb("config", "set", "native.socket", "/tmp/hb-test.sock", tmp=tmp_path).returncode == 0
    assert _hb("config", "get", "native.socket", tmp=tmp_path).stdout == "/tmp/hb-test.sock\n"
    listing = _hb("config", "list", env_extra={"HOSTBRIDGE_TIMEOUT": "9"}, tmp=tmp_path).stdout
    assert "timeout                9                     environment\n" in listing
    assert "native.socket          /tmp/hb-test.sock     %s\n" % (tmp_path / "config" / "config.toml") in listing
    # The default machine's endpoint follows the setting.
    r = _hb("ps", tmp=tmp_path)
    assert "unix:///tmp/hb-test.sock" in r.stderr
    bad = _hb("config", "set", "timeout", "soon", tmp=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: timeout")


def test_silent_engine_times_out_with_one_line(tmp_path):
    import socket

    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX) as listener:  # accepts (backlog) and never answers
        listener.bind(path)
        listener.listen(4)
        r = _hb("--host", "unix://" + path, "ps", env_extra={"HOSTBRIDGE_TIMEOUT": "1"}, tmp=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == ("Error: the engine at unix://%s did not answer GET /containers/json within 1s "
                                "(raise the limit with `hostbridge config set timeout 120`)" % path)


def test_unexpected_error_is_one_line_unless_verbose(capsys, monkeypatch, tmp_path):
    import click

    from hostbridge.cli.main import cli, main

    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    monkeypatch.delenv("HOSTBRIDGE_DEBUG", raising=False)
    boom = click.Command("boom", callback=lambda: {}["missing"])  # a bug: KeyError
    monkeypatch.setitem(cli.commands, "boom", boom)
    assert main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err == ("Error: unexpected KeyError: 'missing' (run with -v or HOSTBRIDGE_DEBUG=1 for the traceback)\n")
    assert main(["-v", "boom"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in err


def test_quiet_silences_status_lines(tmp_path):
    loud = _hb("config", "set", "timeout", "5", tmp=tmp_path)
    assert loud.stderr.startswith("Wrote ")
    quiet = _hb("-q", "config", "set", "timeout", "6", tmp=tmp_path)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert _hb("--version", tmp=tmp_path).stdout == "hostbridge 0.1.0\n"
