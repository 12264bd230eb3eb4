"""Basic (htpasswd) and Bearer (token server) auth against a real docker-registry; login."""

import os

import pytest

from hostbridge.guest.registry import client as rc
from hostbridge.guest.registry import manifest as mf
from hostbridge.guest.registry import pull, push
from hostbridge.guest.registry.auth import AuthConfig
from hostbridge.guest.registry.errors import Unauthorized
from tests.registry import regsupport

CFG = rc.RegistryConfig(retries=1, backoff=0.05, timeout=10)


def _image(tmp_path):
    tar = regsupport.small_layer_tar(str(tmp_path / "l.tar"), {"a.txt": b"a" * 1000, "b.bin": os.urandom(5000)})
    return regsupport.image_config([regsupport.file_digest(tar)]), [tar]


def test_basic_auth_good_and_bad_credentials(tmp_path, basic_registry):
    d = basic_registry.domain
    cfg, tars = _image(tmp_path)
    good = AuthConfig("alice", "wonderland", d)
    res = push.push("%s/app:1" % d, cfg, tars, auth=good, config=CFG)
    got = pull.pull("%s/app:1" % d, regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl"),
                    auth=good, config=CFG)
    assert got.digest == res["Digest"]
    assert rc.login(good, CFG) == {"Status": "Login Succeeded", "IdentityToken": ""}

    with pytest.raises(Unauthorized) as e:
        rc.login(AuthConfig("alice", "wrong", d), CFG)
    assert "incorrect username or password" in str(e.value) and "hostbridge login %s" % d in str(e.value)
    with pytest.raises(Unauthorized) as e:
        pull.pull("%s/app:1" % d, regsupport.new_store(str(tmp_path / "s2")), str(tmp_path / "dl"), config=CFG)
    msg = str(e.value)
    assert msg.startswith("unauthorized: authentication required") and "`hostbridge login %s`" % d in msg
    assert "\n" not in msg and e.value.status == 401


def test_bearer_token_flow(tmp_path, token_registry):
    d, tokens = token_registry.domain, token_registry.tokens
    cfg, tars = _image(tmp_path)
    bob = AuthConfig("bob", "builder", d)
    res = push.push("%s/team/app:1" % d, cfg, tars, auth=bob, config=CFG)
    scopes = [q for r in tokens.requests for q in r["query"].get("scope", [])]
    assert "repository:team/app:pull,push" in scopes
    assert all(r["query"]["service"] == [tokens.SERVICE] for r in tokens.requests)
    assert all(r["auth"] and r["auth"].startswith("Basic ") for r in tokens.requests)
    n_push_tokens = len(tokens.requests)
    assert n_push_tokens <= 2  # cached per scope: not one token per request

    # anonymous pull: the token server grants pull to anyone
    got = pull.pull("%s/team/app:1" % d, regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl"),
                    config=CFG)
    assert got.digest == res["Digest"]
    anon = tokens.requests[n_push_tokens:]
    assert anon and all(r["auth"] is None for r in anon)

    # anonymous push: the token carries no push right → the registry answers 401
    with pytest.raises(Unauthorized, match="authentication required"):
        push.push("%s/team/app:2" % d, cfg, tars, config=CFG)
    with pytest.raises(Unauthorized, match="incorrect username or password"):
        push.push("%s/team/app:2" % d, cfg, tars, auth=AuthConfig("bob", "nope", d), config=CFG)
    with pytest.raises(Unauthorized) as e:
        push.push("%s/team/app:2" % d, cfg, tars, auth=AuthConfig("reader", "books", d), config=CFG)
    assert "is not granted to reader on %s" % d in str(e.value) and "permissions" in str(e.value)
    assert rc.login(bob, CFG)["Status"] == "Login Succeeded"
    with pytest.raises(Unauthorized):
        rc.login(AuthConfig("bob", "nope", d), CFG)


def test_redirect_to_other_host_drops_authorization(tmp_path, basic_registry, registry):
    """Blob GETs redirected to 'storage' (another host:port) must not carry the credentials."""
    cfg, tars = _image(tmp_path)
    alice = AuthConfig("alice", "wonderland", basic_registry.domain)
    res = push.push("%s/app:1" % basic_registry.domain, cfg, tars, auth=alice, config=CFG)
    push.push("%s/app:1" % registry.domain, cfg, tars, config=CFG)  # the "storage" has the same blobs
    storage = regsupport.FaultProxy(registry.port).start()
    front = regsupport.FaultProxy(basic_registry.port).start()
    try:
        def redirect(h, meth, path):
            if meth == "GET" and "/blobs/sha256:" in path:
                regsupport.reply(h, 307, b"", headers={"Location": "http://%s%s" % (storage.domain, path)})
                return True
            return False
        front.rules.append(redirect)
        got = pull.pull("%s/app:1" % front.domain, regsupport.new_store(str(tmp_path / "s")),
                        str(tmp_path / "dl"), auth=alice, config=CFG)
        assert got.digest == res["Digest"]
        blob_reqs = [a for (p, a) in storage.auth_seen if "/blobs/" in p]
        assert len(blob_reqs) == 2 and blob_reqs == [None, None]
        assert any(a and a.startswith("Basic ") for (p, a) in front.auth_seen if "/manifests/" in p)
    finally:
        front.stop()
        storage.stop()


def test_tls_registry_needs_its_ca_from_certs_dir(tmp_path, monkeypatch):
    """HTTPS with verification: refused (at once, no retries) until the CA is in certs.d."""
    pytest.importorskip("cryptography")
    work = str(tmp_path / "tls")
    os.makedirs(work)
    cert, key = regsupport.make_tls_cert(work)
    srv = regsupport.RegistryServer(work, tls=(cert, key)).start()
    try:
        url = "https://%s" % srv.domain
        scopes = ["repository:secure:pull,push"]
        untrusted = rc.RegistryClient(srv.domain, config=rc.RegistryConfig(retries=3, backoff=1.0), endpoint=url)
        sleeps = []
        monkeypatch.setattr(rc.time, "sleep", sleeps.append)  # records retry back-offs
        with pytest.raises(rc.RegistryUnavailable) as e:
            untrusted.ping()
        monkeypatch.undo()
        assert sleeps == []  # a certificate problem is not retried
        assert "is not trusted" in str(e.value) and "ca.crt" in str(e.value)

        certs = tmp_path / "certs.d" / srv.domain
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(open(cert, "rb").read())
        client = rc.RegistryClient(srv.domain, config=rc.RegistryConfig(certs_dir=str(tmp_path / "certs.d")),
                                   endpoint=url)
        cfg, tars = _image(tmp_path)
        cfg_digest = mf.sha256_digest(cfg)
        push.upload_blob(client, "secure", cfg, cfg_digest, scopes, monolithic=True)
        assert push.blob_exists(client, "secure", cfg_digest, scopes)
    finally:
        srv.stop()
