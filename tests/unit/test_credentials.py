"""Credentials through a real file-backed keyring backend, and the docker helper protocol."""

import base64
import io
import json
import os
import shutil
import subprocess
import sys

import keyring
import pytest

from hostbridge import credentials
from hostbridge.errors import CredentialsError
from hostbridge.guest.registry.auth import decode_registry_auth
from tests.unit.filekeyring import FileKeyring, LockedKeyring

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def kr(tmp_path, monkeypatch):
    monkeypatch.setenv(credentials.ALLOW_INSECURE_ENV, "1")  # a file-backed test keyring
    previous = keyring.get_keyring()
    backend = FileKeyring(str(tmp_path / "keyring.json"))
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_store_get_list_erase_round_trip(kr):
    credentials.store("myreg:5000", "ana", "s3cret")
    credentials.store("https://index.docker.io/v1/", "hubby", "tok")
    c = credentials.get("http://myreg:5000/")
    assert (c.registry, c.username, c.secret) == ("myreg:5000", "ana", "s3cret")
    assert credentials.get("docker.io").username == "hubby"
    assert credentials.list_all() == {"myreg:5000": "ana", "https://index.docker.io/v1/": "hubby"}
    assert "s3cret" not in repr(c)
    # the secret is in the keyring under hostbridge:REGISTRY, the index holds no secrets
    assert keyring.get_password("hostbridge:myreg:5000", "ana") == "s3cret"
    assert "s3cret" not in keyring.get_password("hostbridge", "registries")
    # a new user replaces the old entry
    credentials.store("myreg:5000", "bea", "other")
    assert credentials.get("myreg:5000").username == "bea"
    assert keyring.get_password("hostbridge:myreg:5000", "ana") is None
    assert credentials.erase("myreg:5000") is True
    assert credentials.erase("myreg:5000") is False
    assert credentials.get("myreg:5000") is None


def test_x_registry_auth_header_round_trip(kr):
    credentials.store("myreg:5000", "ana", "pä$$/+?")
    header = credentials.auth_header("myreg:5000")
    assert "+" not in header and "/" not in header  # base64url
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "ana", "password": "pä$$/+?", "serveraddress": "myreg:5000"}
    decoded = decode_registry_auth(header)
    assert (decoded.username, decoded.password, decoded.serveraddress) == ("ana", "pä$$/+?", "myreg:5000")
    assert decode_registry_auth(credentials.auth_header("unknown.example")).anonymous
    assert credentials.auth_header_for_image("myreg:5000/team/app:1") == header
    credentials.store("docker.io", "hubby", "tok")
    assert decode_registry_auth(credentials.auth_header_for_image("redis")).username == "hubby"


def test_locked_keyring_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(credentials.ALLOW_INSECURE_ENV, "1")  # a test backend: its priority is unknown
    previous = keyring.get_keyring()
    keyring.set_keyring(LockedKeyring())
    try:
        with pytest.raises(CredentialsError) as e:
            credentials.store("myreg:5000", "ana", "x")
        assert "cannot use the OS keyring" in str(e.value) and "unlock" in str(e.value)
        out = io.StringIO()
        assert credentials.helper_main(["list"], io.StringIO(""), out) == 1
        assert "cannot use the OS keyring" in out.getvalue()
    finally:
        keyring.set_keyring(previous)


def _helper(tmp_path, action, stdin=""):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON_KEYRING_BACKEND="tests.unit.filekeyring.FileKeyring",
               HOSTBRIDGE_TEST_KEYRING=str(tmp_path / "helper-keyring.json"))
    return subprocess.run([sys.executable, "-m", "hostbridge.credentials", action], input=stdin,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_docker_credential_helper_protocol(tmp_path):
    r = _helper(tmp_path, "store", json.dumps({"ServerURL": "https://index.docker.io/v1/",
                                               "Username": "hubby", "Secret": "tok"}))
    assert r.returncode == 0, r.stdout + r.stderr
    r = _helper(tmp_path, "store", json.dumps({"ServerURL": "127.0.0.1:5000", "Username": "ana", "Secret": "pw"}))
    assert r.returncode == 0
    r = _helper(tmp_path, "get", "https://index.docker.io/v1/\n")
    assert r.returncode == 0 and json.loads(r.stdout) == {
        "ServerURL": "https://index.docker.io/v1/", "Username": "hubby", "Secret": "tok"}
    r = _helper(tmp_path, "list")
    assert json.loads(r.stdout) == {"https://index.docker.io/v1/": "hubby", "127.0.0.1:5000": "ana"}
    assert _helper(tmp_path, "erase", "127.0.0.1:5000").returncode == 0
    r = _helper(tmp_path, "get", "127.0.0.1:5000")
    assert r.returncode == 1 and r.stdout.strip() == credentials.NOT_FOUND
    assert _helper(tmp_path, "store", "not json").returncode == 1
    assert _helper(tmp_path, "bogus").returncode == 1
    # the credentials live in the keyring backend's own store, where the helper put them
    with open(tmp_path / "helper-keyring.json") as f:
        assert json.load(f)["hostbridge:docker.io"] == {"hubby": "tok"}


@pytest.mark.skipif(not shutil.which("docker"), reason="the stock docker CLI is not installed")
def test_stock_docker_cli_uses_the_helper(tmp_path):
    """`docker logout` (no daemon needed) erases through docker-credential-hostbridge."""
    bindir, cfgdir = tmp_path / "bin", tmp_path / "dockercfg"
    bindir.mkdir()
    cfgdir.mkdir()
    helper = bindir / "docker-credential-hostbridge"
    helper.write_text("#!/bin/sh\nexec %s -m hostbridge.credentials \"$@\"\n" % sys.executable)
    helper.chmod(0o755)
    (cfgdir / "config.json").write_text(json.dumps({"credsStore": "hostbridge"}))
    assert _helper(tmp_path, "store", json.dumps({"ServerURL": "127.0.0.1:5999", "Username": "ana",
                                                  "Secret": "pw"})).returncode == 0
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), DOCKER_CONFIG=str(cfgdir),
               DOCKER_HOST="unix://%s" % (tmp_path / "no-daemon.sock"), PYTHONPATH=ROOT,
               PYTHON_KEYRING_BACKEND="tests.unit.filekeyring.FileKeyring",
               HOSTBRIDGE_TEST_KEYRING=str(tmp_path / "helper-keyring.json"))
    r = subprocess.run(["docker", "logout", "127.0.0.1:5999"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "Removing login credentials for 127.0.0.1:5999" in r.stdout, r.stdout + r.stderr
    assert _helper(tmp_path, "get", "127.0.0.1:5999").returncode == 1


def test_no_keyring_backend_means_anonymous_not_an_error():
    """A headless host without any keyring backend can still pull anonymously; login says why it cannot store."""
    import keyring
    from keyring.backends import fail

    from hostbridge import credentials
    from hostbridge.errors import CredentialsError

    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert credentials.get("registry.example:5000") is None
        # anonymous: docker's own header for no credentials, base64url of "{}"
        assert credentials.auth_header_for_image("registry.example:5000/app:1") == "e30="
        with pytest.raises(CredentialsError, match="keyring"):
            credentials.store("registry.example:5000", "ana", "s3cret")
    finally:
        keyring.set_keyring(old)


def test_build_config_header_carries_every_stored_login(kr):
    from hostbridge.guest.registry.auth import decode_registry_config

    assert credentials.build_config_header() == ""
    credentials.store("myreg:5000", "ana", "s3cret")
    credentials.store("other.example", "bo", "pw")
    configs = decode_registry_config(credentials.build_config_header())
    assert {k: (v.username, v.password) for k, v in configs.items()} == {
        "myreg:5000": ("ana", "s3cret"), "other.example": ("bo", "pw")}
