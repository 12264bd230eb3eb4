"""What the host tells the engine about proxies and CAs (pure functions)."""

import pytest

from hostbridge import config as hbconfig
from hostbridge.engine_settings import ca_files, daemon_flags, daemon_json, proxies
from hostbridge.errors import ConfigError


def _cfg(tmp_path, **values):
    path = tmp_path / "config.toml"
    if path.exists():
        path.unlink()  # each call starts from an empty file
    for k, v in values.items():
        hbconfig.set_value(k.replace("__", "."), v, str(path))
    return hbconfig.load(environ={}, path=str(path))


def test_host_environment_is_passed_on(tmp_path):
    env = {"HTTPS_PROXY": "http://proxy.corp:8080", "http_proxy": "http://proxy.corp:3128", "NO_PROXY": ".corp"}
    px, notes = proxies(_cfg(tmp_path), env)
    assert px == {"http-proxy": "http://proxy.corp:3128", "https-proxy": "http://proxy.corp:8080", "no-proxy": ".corp"}
    assert notes == []
    assert daemon_flags(_cfg(tmp_path), env) == ["--http-proxy", "http://proxy.corp:3128", "--https-proxy",
                                                 "http://proxy.corp:8080", "--no-proxy", ".corp"]
    assert daemon_flags(_cfg(tmp_path), {}) == []


def test_vm_proxy_overrides_and_none_turns_it_off(tmp_path):
    env = {"HTTPS_PROXY": "http://proxy.corp:8080", "NO_PROXY": ".corp"}
    px, _ = proxies(_cfg(tmp_path, vm__proxy="http://other:3128", vm__no_proxy="a,b"), env)
    assert px == {"http-proxy": "http://other:3128", "https-proxy": "http://other:3128", "no-proxy": "a,b"}
    assert daemon_flags(_cfg(tmp_path, vm__proxy="none"), env) == ["--http-proxy", "", "--https-proxy", "",
                                                                    "--no-proxy", ""]
    with pytest.raises(ConfigError, match="not an http:// or https:// URL"):
        proxies(_cfg(tmp_path, vm__proxy="socks5://x:1"), {})
    with pytest.raises(ConfigError, match="bad port"):
        proxies(_cfg(tmp_path), {"HTTPS_PROXY": "http://x:port"})


def test_loopback_proxy_rewritten_for_a_vm_and_left_out_for_a_remote_host(tmp_path):
    env = {"HTTPS_PROXY": "http://user:pw@127.0.0.1:3128", "HTTP_PROXY": "http://proxy.corp:3128"}
    px, notes = proxies(_cfg(tmp_path), env, host_alias="10.0.2.2")
    assert px["https-proxy"] == "http://user:pw@10.0.2.2:3128" and px["http-proxy"] == "http://proxy.corp:3128"
    px, notes = proxies(_cfg(tmp_path), env, remote=True)
    assert px["https-proxy"] == "" and px["http-proxy"] == "http://proxy.corp:3128"
    assert len(notes) == 1 and "loopback" in notes[0] and "vm.proxy" in notes[0]


def test_registry_ca_file_or_folder(tmp_path):
    d = tmp_path / "cas"
    d.mkdir()
    (d / "b.pem").write_text("x")
    (d / "a.crt").write_text("x")
    (d / "notes.txt").write_text("x")
    assert ca_files(_cfg(tmp_path, registry__ca=str(d))) == [str(d / "a.crt"), str(d / "b.pem")]
    assert daemon_flags(_cfg(tmp_path, registry__ca=str(d / "a.crt")), {}) == ["--registry-ca", str(d / "a.crt")]
    with pytest.raises(ConfigError, match="does not exist"):
        ca_files(_cfg(tmp_path, registry__ca=str(tmp_path / "missing.pem")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no"):
        ca_files(_cfg(tmp_path, registry__ca=str(tmp_path / "empty")))
    assert daemon_json({"https-proxy": "http://p:1"}, ["/x/ca/a.crt"]) == {
        "proxies": {"https-proxy": "http://p:1"}, "registry-ca": ["/x/ca/a.crt"]}
