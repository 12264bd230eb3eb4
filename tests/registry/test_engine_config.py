"""The daemon's registry options, and how /images/create names what to pull (pure functions)."""

import json

import pytest

from hostbridge.guest import daemon
from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.transfers import pull_reference


def test_flags_and_config_file_both_count(tmp_path):
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"insecure-registries": ["10.0.0.0/8"], "registry-mirrors": ["https://m.example/"]}))
    args = daemon.parse_args(["--insecure-registry", "reg.lan:5000", "--registry-mirror", "http://127.0.0.1:5001",
                              "--config-file", str(conf)])
    cfg = daemon.registry_config(args)
    assert cfg.insecure_registries == ["reg.lan:5000", "10.0.0.0/8"]
    assert cfg.mirrors == ["http://127.0.0.1:5001", "https://m.example"]
    assert cfg.is_insecure("reg.lan:5000") and cfg.is_insecure("10.1.2.3:443") and not cfg.is_insecure("reg.lan")
    assert cfg.endpoint("reg.lan:5000") == "http://reg.lan:5000"


def test_bad_config_file_is_one_clear_error(tmp_path):
    conf = tmp_path / "daemon.json"
    conf.write_text("{nope")
    with pytest.raises(InvalidParameter, match="not valid JSON"):
        daemon.registry_config(daemon.parse_args(["--config-file", str(conf)]))
    conf.write_text("[]")
    with pytest.raises(InvalidParameter, match="JSON object"):
        daemon.registry_config(daemon.parse_args(["--config-file", str(conf)]))


def test_pull_reference_joins_tag_or_digest():
    digest = "sha256:" + "a" * 64
    assert pull_reference("busybox", "") == "busybox"  # all tags (docker pull -a)
    assert pull_reference("busybox", "1.36") == "busybox:1.36"
    assert pull_reference("127.0.0.1:5000/team/app", digest) == "127.0.0.1:5000/team/app@" + digest
    assert pull_reference("docker.io/library/redis", "7") == "redis:7"
    with pytest.raises(InvalidParameter):
        pull_reference("Bad Name", "")
