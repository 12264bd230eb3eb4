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


def test_proxy_choice_per_url_as_go_does():
    from hostbridge.guest.registry.config import Proxies

    p = Proxies(http="http://p.corp:3128", https="proxy.corp:8080",
                no_proxy="internal.corp, .lan,10.0.0.0/8,reg.example:5000,[::2]")
    assert p.for_url("https://registry-1.docker.io/v2/").netloc == "proxy.corp:8080"  # bare host:port → http://
    assert p.for_url("http://reg.example:5001/v2/").hostname == "p.corp"
    for direct in ("https://internal.corp/v2/", "https://a.internal.corp/v2/", "https://x.lan/v2/",
                   "https://10.1.2.3/v2/", "http://reg.example:5000/v2/", "https://127.0.0.1:5000/v2/",
                   "http://localhost:5000/v2/", "https://[::1]/v2/", "https://[::2]/v2/"):
        assert p.for_url(direct) is None, direct
    assert p.for_url("https://notinternal.corp/v2/") is not None
    assert Proxies(https="http://p:1", no_proxy="*").for_url("https://docker.io/") is None
    assert Proxies(http="http://p:1").for_url("https://docker.io/") is None  # https needs https_proxy
    env = Proxies.from_env({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1", "no_proxy": "x"})
    assert (env.https, env.no_proxy) == ("http://upper:1", "x")


def test_proxy_flags_then_config_file_then_environment(tmp_path, monkeypatch):
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"proxies": {"https-proxy": "http://file:2", "no-proxy": "from.file"}}))
    monkeypatch.setenv("HTTPS_PROXY", "http://env:3")
    monkeypatch.setenv("HTTP_PROXY", "http://env:4")
    cfg = daemon.registry_config(daemon.parse_args(["--config-file", str(conf)]))
    assert (cfg.proxies.https, cfg.proxies.http, cfg.proxies.no_proxy) == ("http://file:2", "http://env:4", "from.file")
    cfg = daemon.registry_config(daemon.parse_args(["--config-file", str(conf), "--https-proxy", "http://flag:1",
                                                    "--http-proxy", "", "--no-proxy", ""]))
    assert (cfg.proxies.https, cfg.proxies.http, cfg.proxies.no_proxy) == ("http://flag:1", "", "")
    conf.write_text(json.dumps({"proxies": "http://x"}))
    with pytest.raises(InvalidParameter, match="proxies must be an object"):
        daemon.registry_config(daemon.parse_args(["--config-file", str(conf)]))
    with pytest.raises(InvalidParameter, match="registry CA %s does not exist" % (tmp_path / "nope.crt")):
        daemon.registry_config(daemon.parse_args(["--registry-ca", str(tmp_path / "nope.crt")]))
