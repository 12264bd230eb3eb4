"""hostbridge.config: defaults < file < environment < flags, and validation."""

import pytest

from hostbridge import config
from hostbridge.errors import ConfigError


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('machine = "filebox"\ntimeout = 5\n\n[native]\nsocket = "/tmp/file.sock"\n')
    return str(path)


def test_defaults_when_no_file(tmp_path):
    c = config.load(environ={}, path=str(tmp_path / "missing.toml"))
    assert c["machine"] == "default"
    assert c["native.socket"] == "/run/hostbridge/docker.sock"
    assert c["timeout"] == 60.0
    assert c.origin["machine"] == "default"


def test_file_overrides_defaults(cfg_file):
    c = config.load(environ={}, path=cfg_file)
    assert (c["machine"], c["timeout"], c["native.socket"]) == ("filebox", 5.0, "/tmp/file.sock")
    assert c.origin["native.socket"] == cfg_file


def test_env_overrides_file_and_flags_override_env(cfg_file):
    env = {"HOSTBRIDGE_MACHINE": "envbox", "HOSTBRIDGE_TIMEOUT": "7"}
    c = config.load(environ=env, path=cfg_file)
    assert (c["machine"], c["timeout"]) == ("envbox", 7.0)
    c = config.load(flags={"machine": "flagbox", "host": None}, environ=env, path=cfg_file)
    assert c["machine"] == "flagbox"
    assert c.origin["machine"] == "flag"
    assert c["host"] == ""  # a flag left unset does not override


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[native]\nsokcet = '/x'\n")
    with pytest.raises(ConfigError, match="native.sokcet"):
        config.load(environ={}, path=str(path))


@pytest.mark.parametrize("text", ['timeout = "soon"\n', "timeout = -1\n", "machine = 3\n"])
def test_wrong_types_are_errors(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        config.load(environ={}, path=str(path))


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("machine = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(environ={}, path=str(path))


def test_bad_env_value_names_the_source(tmp_path):
    with pytest.raises(ConfigError, match="environment"):
        config.load(environ={"HOSTBRIDGE_TIMEOUT": "x"}, path=str(tmp_path / "none.toml"))


def test_set_value_round_trips_through_the_file(tmp_path):
    path = str(tmp_path / "cfg" / "config.toml")
    config.set_value("native.socket", '/tmp/a "quoted".sock', path=path)
    config.set_value("timeout", "2.5", path=path)
    config.set_value("machine", "dev", path=path)
    c = config.load(environ={}, path=path)
    assert (c["native.socket"], c["timeout"], c["machine"]) == ('/tmp/a "quoted".sock', 2.5, "dev")
    config.set_value("machine", None, path=path)
    assert config.load(environ={}, path=path)["machine"] == "default"
    assert open(path).read() == 'timeout = 2.5\n\n[native]\nsocket = "/tmp/a \\"quoted\\".sock"\n'


def test_set_value_validates_before_writing(tmp_path):
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError):
        config.set_value("timeout", "soon", path=str(path))
    with pytest.raises(ConfigError, match="unknown setting"):
        config.set_value("nope", "1", path=str(path))
    assert not path.exists()
