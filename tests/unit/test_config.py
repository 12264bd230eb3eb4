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


USER_FILE = """# my hostbridge settings
machine = "work"   # the one I use most

# VM defaults
[vm]
cpus = 4  # laptop has 8
# memory is left at its default

[native]
socket = "/run/hostbridge/docker.sock"
"""


def test_set_keeps_comments_and_layout(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(USER_FILE)
    config.set_value("vm.cpus", "6", path=str(path))
    assert path.read_text() == USER_FILE.replace("cpus = 4  # laptop", "cpus = 6  # laptop")
    config.set_value("machine", "home", path=str(path))
    assert 'machine = "home"   # the one I use most\n' in path.read_text()
    config.set_value("vm.memory", "4096", path=str(path))  # a new key joins its section
    assert "cpus = 6  # laptop has 8\nmemory = 4096\n# memory is left" in path.read_text()
    config.set_value("timeout", "90", path=str(path))  # a new top-level key stays above the tables
    assert path.read_text().startswith('# my hostbridge settings\nmachine = "home"   # the one I use most\ntimeout = 90\n')
    config.set_value("vm.proxy", "http://proxy.corp:3128", path=str(path))
    config.set_value("registry.ca", "/etc/ssl/corp.pem", path=str(path))  # a new table at the end
    assert path.read_text().endswith('[native]\nsocket = "/run/hostbridge/docker.sock"\n\n[registry]\nca = "/etc/ssl/corp.pem"\n')
    config.set_value("vm.cpus", None, path=str(path))
    text = path.read_text()
    assert "cpus" not in text and "# VM defaults\n[vm]\nmemory = 4096\n" in text
    c = config.load(environ={}, path=str(path))
    assert (c["machine"], c["vm.cpus"], c["vm.memory"], c["timeout"], c["vm.proxy"]) == (
        "home", 2, 4096, 90.0, "http://proxy.corp:3128")


def test_set_edits_quoted_values_and_odd_spacing(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[native]\n  socket="/a # not a comment" # real comment\n')
    config.set_value("native.socket", "/b", path=str(path))
    assert path.read_text() == '[native]\n  socket="/b" # real comment\n'
    path.write_text('vm.cpus = 3 # dotted at top level\n')
    config.set_value("vm.cpus", "5", path=str(path))
    assert path.read_text() == 'vm.cpus = 5 # dotted at top level\n'
