"""Docker contexts written as the docker CLI stores them (contexts.py); the CLI itself checks
them in tests/cli/test_docker_context.py."""

import hashlib
import json
import os

import pytest

from hostbridge import contexts
from hostbridge.errors import ConfigError


def test_the_file_is_where_the_docker_cli_looks(tmp_path):
    name = contexts.write("dev", "unix:///tmp/hb/dev/docker.sock", base=str(tmp_path))
    assert name == "hostbridge-dev"
    path = tmp_path / "contexts" / "meta" / hashlib.sha256(b"hostbridge-dev").hexdigest() / "meta.json"
    meta = json.loads(path.read_text())
    assert meta["Name"] == "hostbridge-dev"
    assert meta["Endpoints"]["docker"] == {"Host": "unix:///tmp/hb/dev/docker.sock", "SkipTLSVerify": False}
    assert contexts.owner(meta) == "dev"


def test_docker_config_is_honoured(tmp_path):
    assert contexts.config_dir({"DOCKER_CONFIG": str(tmp_path)}) == str(tmp_path)
    assert contexts.config_dir({}) == os.path.join(os.path.expanduser("~"), ".docker")


def test_update_rewrites_our_own_context(tmp_path):
    contexts.write("dev", "unix:///a.sock", base=str(tmp_path))
    contexts.write("dev", "npipe:////./pipe/hostbridge-dev", base=str(tmp_path))
    assert contexts.read("hostbridge-dev", str(tmp_path))["Endpoints"]["docker"]["Host"] == \
        "npipe:////./pipe/hostbridge-dev"


def test_a_users_context_of_that_name_is_never_overwritten_nor_removed(tmp_path):
    path = contexts.meta_path("hostbridge-dev", str(tmp_path))
    os.makedirs(os.path.dirname(path))
    theirs = {"Name": "hostbridge-dev", "Metadata": {}, "Endpoints": {"docker": {"Host": "tcp://10.0.0.1:2376"}}}
    with open(path, "w") as f:
        json.dump(theirs, f)
    with pytest.raises(contexts.ContextError, match="not made by hostbridge"):
        contexts.write("dev", "unix:///a.sock", base=str(tmp_path))
    assert contexts.remove("dev", base=str(tmp_path)) is False
    with open(path) as f:
        assert json.load(f) == theirs


def test_remove_unselects_it_and_keeps_the_rest_of_config_json(tmp_path):
    contexts.write("dev", "unix:///a.sock", base=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "hostbridge-dev", "auths": {"x": {}}}))
    assert contexts.current(str(tmp_path)) == "hostbridge-dev"
    assert contexts.remove("dev", base=str(tmp_path)) is True
    assert not os.path.exists(os.path.dirname(contexts.meta_path("hostbridge-dev", str(tmp_path))))
    assert json.loads((tmp_path / "config.json").read_text()) == {"auths": {"x": {}}}
    assert contexts.remove("dev", base=str(tmp_path)) is False  # gone: nothing to do


def test_a_corrupt_meta_json_is_a_clear_error(tmp_path):
    path = contexts.meta_path("hostbridge-dev", str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(contexts.ContextError, match="unreadable"):
        contexts.write("dev", "unix:///a.sock", base=str(tmp_path))


def test_a_machine_name_docker_cannot_take_is_refused():
    with pytest.raises(ConfigError):
        contexts.context_name("a b")
