"""Registry logins the user already has: the stock docker CLI's config.json, read as docker
reads it when hostbridge's keyring has no login, and `login --configure-docker`."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.registry.engine_support import docker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def hb(tmp_path, engine):
    """The hostbridge CLI with an empty test keyring, DOCKER_CONFIG in tmp and a bin dir on PATH
    for credential helpers."""
    import subprocess

    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO, HOSTBRIDGE_HOST=engine.url, HOSTBRIDGE_HOME=str(tmp_path / "hbhome"),
               PYTHON_KEYRING_BACKEND="tests.unit.filekeyring.FileKeyring",
               HOSTBRIDGE_TEST_KEYRING=str(tmp_path / "keyring.json"), DOCKER_HOST=engine.url,
               DOCKER_CONFIG=str(tmp_path / "docker-config"), DOCKER_CLI_HINTS="false",
               PATH="%s:%s" % (bindir, os.environ["PATH"]))
    env.pop("HOSTBRIDGE_DEBUG", None)

    def run(*args, input=None):
        return subprocess.run([sys.executable, "-m", "hostbridge.cli"] + list(args), env=env, input=input,
                              capture_output=True, text=True, timeout=120, cwd=REPO)
    run.env, run.bindir, run.config = env, bindir, tmp_path / "docker-config" / "config.json"
    return run


def _private_image(hb, registry):
    """Push busybox as REG/private:1 with the stock CLI's own login, then forget the local copy."""
    name = "%s/private:1" % registry.domain
    docker(hb.env, "tag", "busybox", name)
    docker(hb.env, "login", "-u", "alice", "--password-stdin", registry.domain, input="wonderland\n")
    docker(hb.env, "push", name)
    docker(hb.env, "rmi", name)
    return name


@pytest.mark.root
def test_pull_uses_the_stock_clis_auths(hb, basic_registry):
    name = _private_image(hb, basic_registry)
    conf = json.loads(hb.config.read_text())
    assert "auth" in conf["auths"][basic_registry.domain]  # the stock CLI kept it there (no credsStore)
    pulled = hb("pull", "-q", name)
    assert pulled.returncode == 0 and pulled.stdout == name + "\n", pulled.stderr
    # Without that login, the same pull is refused: it was the config's credentials that counted.
    docker(hb.env, "rmi", name)
    docker(hb.env, "logout", basic_registry.domain)
    anon = hb("pull", "-q", name)
    assert anon.returncode != 0 and "authentication required" in anon.stderr


@pytest.mark.root
def test_pull_uses_a_credential_helper_from_credhelpers(hb, basic_registry):
    name = _private_image(hb, basic_registry)
    docker(hb.env, "logout", basic_registry.domain)
    # A credential helper speaking docker's protocol (a small script: the real ones need a desktop
    # keychain). It logs what it was asked, so the test sees docker's call shape.
    log = hb.bindir / "helper.log"
    helper = hb.bindir / "docker-credential-teststore"
    helper.write_text("#!/bin/sh\nread server\necho \"$1 $server\" >> %s\n"
                      "[ \"$server\" = %s ] || { echo 'credentials not found in native keychain'; exit 1; }\n"
                      "echo '{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"wonderland\"}'\n"
                      % (log, basic_registry.domain))
    helper.chmod(0o755)
    hb.config.write_text(json.dumps({"credHelpers": {basic_registry.domain: "teststore"}, "credsStore": "nothere"}))
    pulled = hb("pull", "-q", name)
    assert pulled.returncode == 0, pulled.stderr
    assert log.read_text().splitlines()[0] == "get %s" % basic_registry.domain
    # credsStore names a helper that is not installed: a clear error, not an anonymous pull.
    docker(hb.env, "rmi", name)
    hb.config.write_text(json.dumps({"credsStore": "nothere"}))
    r = hb("pull", "-q", name)
    assert r.returncode != 0 and "docker-credential-nothere is not installed" in r.stderr
    assert str(hb.config) in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.root
def test_malformed_config_json_names_file_and_line(hb, registry):
    hb.config.parent.mkdir(parents=True, exist_ok=True)
    hb.config.write_text('{\n  "auths": {\n    "x": {"auth": "YTpi"},,\n  }\n}\n')
    r = hb("pull", "-q", "%s/anything:1" % registry.domain)
    assert r.returncode != 0
    assert "%s line 3 column" % hb.config in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.root
def test_configure_docker_then_the_stock_cli_logs_in_through_hostbridge(hb, basic_registry):
    hb.config.parent.mkdir(parents=True, exist_ok=True)
    hb.config.write_text(json.dumps({"auths": {}, "psFormat": "table {{.ID}}", "credsStore": "desktop"}))
    helper = hb.bindir / "docker-credential-hostbridge"
    helper.write_text("#!/bin/sh\nexec %s -m hostbridge.credentials \"$@\"\n" % sys.executable)
    helper.chmod(0o755)
    r = hb("login", "--configure-docker")
    assert r.returncode == 0 and "credsStore set to hostbridge in %s (was desktop)" % hb.config in r.stdout, r.stderr
    conf = json.loads(hb.config.read_text())
    assert conf["credsStore"] == "hostbridge" and conf["psFormat"] == "table {{.ID}}"  # the rest is kept
    name = "%s/private:1" % basic_registry.domain
    docker(hb.env, "tag", "busybox", name)
    docker(hb.env, "login", "-u", "alice", "--password-stdin", basic_registry.domain, input="wonderland\n")
    assert "wonderland" not in hb.config.read_text()  # the stock CLI stored it through our helper…
    assert "wonderland" in open(hb.env["HOSTBRIDGE_TEST_KEYRING"]).read()  # …in the keyring
    docker(hb.env, "push", name)
    docker(hb.env, "rmi", name)
    pulled = hb("pull", "-q", name)  # hostbridge finds the same login in its keyring
    assert pulled.returncode == 0, pulled.stderr


@pytest.mark.root
def test_build_from_a_private_image_with_the_stock_clis_login(hb, basic_registry, tmp_path):
    base = _private_image(hb, basic_registry)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM %s\nRUN echo built > /built\n" % base)
    r = hb("build", "-q", "-t", "fromcfg:1", str(ctx))
    assert r.returncode == 0, r.stderr
    assert docker(hb.env, "run", "--rm", "fromcfg:1", "cat", "/built").stdout == "built\n"
    docker(hb.env, "rmi", "fromcfg:1", base)
    docker(hb.env, "logout", basic_registry.domain)
    r = hb("build", "-q", "-t", "fromcfg:2", str(ctx))
    assert r.returncode != 0 and "authentication required" in r.stderr + r.stdout
