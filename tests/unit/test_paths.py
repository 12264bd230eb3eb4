"""hostbridge.paths: every host path under HOSTBRIDGE_HOME, sockets short enough for macOS."""

import os

import pytest

from hostbridge import paths


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "a" / "very" / "deep" / ("x" * 60)))
    return tmp_path


def test_home_moves_config_and_state(home):
    base = os.environ["HOSTBRIDGE_HOME"]
    assert paths.config_file() == os.path.join(base, "config", "config.toml")
    assert paths.machine_dir("dev") == os.path.join(base, "state", "machines", "dev")


def test_machine_files_live_in_machine_dir():
    p = paths.MachinePaths("dev")
    for f in (p.machine_json, p.known_hosts, p.ssh_key, p.agent_pid, p.agent_log, p.serial_log, p.disk):
        assert os.path.dirname(f) == p.dir


def test_socket_paths_fit_macos_limit_even_with_deep_home():
    p = paths.MachinePaths("a-machine-with-a-rather-long-name-indeed")
    assert len(p.docker_sock.encode()) <= paths.MAX_SOCKET_PATH
    assert len(os.environ["HOSTBRIDGE_HOME"]) > paths.MAX_SOCKET_PATH - 20


def test_runtime_dir_differs_per_home(monkeypatch, tmp_path):
    first = paths.runtime_dir()
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path / "other"))
    assert paths.runtime_dir() != first


def test_without_home_uses_platformdirs(monkeypatch, tmp_path):
    monkeypatch.delenv("HOSTBRIDGE_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.config_file() == str(tmp_path / "cfg" / "hostbridge" / "config.toml")
    assert paths.machines_dir() == str(tmp_path / "data" / "hostbridge" / "machines")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "..\\x"])
def test_machine_names_cannot_escape(name):
    with pytest.raises(ValueError):
        paths.machine_dir(name)
