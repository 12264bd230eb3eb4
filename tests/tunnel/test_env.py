"""`hostbridge env` output per shell (pure functions)."""

import pytest

from hostbridge.cli.env import detect_shell, env_script

SOCK = "unix:///home/ana/.local/share/hostbridge/machines/build1/docker.sock"


@pytest.mark.parametrize("shell,line,hint", [
    ("bash", "export DOCKER_HOST='%s'" % SOCK, '# eval "$(hostbridge env --shell bash)"'),
    ("zsh", "export DOCKER_HOST='%s'" % SOCK, '# eval "$(hostbridge env --shell zsh)"'),
    ("fish", "set -gx DOCKER_HOST '%s';" % SOCK, "# hostbridge env --shell fish | source"),
    ("powershell", "$Env:DOCKER_HOST = '%s'" % SOCK, "# & hostbridge env --shell powershell | Invoke-Expression"),
    ("cmd", "SET DOCKER_HOST=%s" % SOCK, "REM @FOR /f \"tokens=*\" %i IN ('hostbridge env --shell cmd') DO @%i"),
])
def test_set_lines_per_shell(shell, line, hint):
    out = env_script(shell, {"DOCKER_HOST": SOCK})
    lines = out.splitlines()
    assert lines[0] == line
    assert lines[-1] == hint
    assert out.endswith("\n")


@pytest.mark.parametrize("shell,line", [
    ("bash", "unset DOCKER_HOST"), ("zsh", "unset DOCKER_HOST"), ("fish", "set -e DOCKER_HOST;"),
    ("powershell", "Remove-Item Env:\\DOCKER_HOST -ErrorAction SilentlyContinue"), ("cmd", "SET DOCKER_HOST="),
])
def test_unset_lines_per_shell(shell, line):
    out = env_script(shell, {"DOCKER_HOST": ""}, unset=True)
    assert out.splitlines()[0] == line
    assert "hostbridge env -u --shell %s" % shell in out


def test_values_are_quoted_for_each_shell():
    tricky = "unix:///tmp/it's here/docker.sock"
    assert env_script("bash", {"X": tricky}).splitlines()[0] == "export X='unix:///tmp/it'\"'\"'s here/docker.sock'"
    assert env_script("fish", {"X": tricky}).splitlines()[0] == "set -gx X 'unix:///tmp/it\\'s here/docker.sock';"
    assert env_script("powershell", {"X": tricky}).splitlines()[0] == "$Env:X = 'unix:///tmp/it''s here/docker.sock'"


def test_bash_output_really_sets_the_variable(tmp_path):
    import subprocess

    script = env_script("bash", {"DOCKER_HOST": "unix:///tmp/it's/d.sock"})
    out = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$DOCKER_HOST"', "_", script],
                         capture_output=True, text=True, check=True).stdout
    assert out == "unix:///tmp/it's/d.sock"


def test_unknown_shell_is_refused():
    with pytest.raises(ValueError, match="unknown shell 'tcsh'"):
        env_script("tcsh", {"DOCKER_HOST": SOCK})


@pytest.mark.parametrize("environ,platform,parent,expected", [
    ({"SHELL": "/usr/bin/fish"}, "linux", None, "fish"),
    ({"SHELL": "/bin/zsh"}, "darwin", None, "zsh"),
    ({"SHELL": "/bin/bash"}, "linux", None, "bash"),
    ({}, "linux", None, "bash"),
    ({"SHELL": "/usr/bin/pwsh"}, "linux", None, "powershell"),
    ({}, "win32", "C:\\Windows\\System32\\cmd.exe", "cmd"),
    ({}, "win32", "pwsh.exe", "powershell"),
    ({}, "win32", None, "powershell"),
])
def test_shell_detection(environ, platform, parent, expected):
    assert detect_shell(environ, platform, parent) == expected

