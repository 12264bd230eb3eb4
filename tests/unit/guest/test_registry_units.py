"""Pure parts of the registry client: challenges, auth headers, platforms, manifests, progress,
endpoints, search terms. No network."""

import base64
import json

import pytest

from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.registry import auth, manifest as mf, progress, search
from hostbridge.guest.registry.client import RegistryConfig, registry_domain, split_hostport
from hostbridge.guest.registry.errors import BadManifest, NoMatchingPlatform
from hostbridge.guest.registry.pull import chain_ids


def test_parse_challenge():
    c = auth.parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                             'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull"}
    assert auth.parse_challenge('Basic realm="Registry Realm"').params == {"realm": "Registry Realm"}
    assert auth.parse_challenge("") is None and auth.parse_challenge("Negotiate abc") is None


def test_decode_registry_auth_variants():
    raw = {"username": "u", "password": "p", "serveraddress": "r:5000"}
    padded = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()
    for header in (padded, padded.rstrip("="), base64.b64encode(json.dumps(raw).encode()).decode()):
        a = auth.decode_registry_auth(header)
        assert (a.username, a.password, a.serveraddress) == ("u", "p", "r:5000")
    assert auth.decode_registry_auth("").anonymous
    assert auth.decode_registry_auth(base64.b64encode(b"{}").decode()).anonymous
    caps = auth.AuthConfig.from_dict({"Username": "U", "Password": "P", "IdentityToken": "t"})
    assert caps.basic_pair() == ("<token>", "t") and "P" not in repr(caps)
    with pytest.raises(InvalidParameter, match="X-Registry-Auth"):
        auth.decode_registry_auth("!!!not base64")


def test_token_cache_per_scope_set():
    c = auth.TokenCache()
    c.put(["repository:a:pull", "repository:b:pull"], "T", 300)
    assert c.get(["repository:b:pull", "repository:a:pull"]) == "T"
    assert c.get(["repository:a:pull"]) is None
    c.drop(["repository:a:pull", "repository:b:pull"])
    assert c.get(["repository:a:pull", "repository:b:pull"]) is None


def test_endpoints_and_insecure_registries():
    cfg = RegistryConfig(insecure_registries=["10.1.0.0/16", "myreg:5000"])
    assert cfg.endpoint("docker.io") == "https://registry-1.docker.io"
    assert cfg.endpoint("localhost:5000") == "http://localhost:5000"
    assert cfg.endpoint("127.0.0.5:80") == "http://127.0.0.5:80"
    assert cfg.endpoint("[::1]:5000") == "http://[::1]:5000"
    assert cfg.endpoint("10.1.2.3:5000") == "http://10.1.2.3:5000"
    assert cfg.endpoint("myreg:5000") == "http://myreg:5000"
    assert cfg.endpoint("ghcr.io") == "https://ghcr.io"
    assert cfg.endpoint("10.2.0.1") == "https://10.2.0.1"
    assert split_hostport("[::1]:5000") == ("::1", 5000) and split_hostport("h") == ("h", None)
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("http://Reg.Example:5000/v2/") == "reg.example:5000"
    assert registry_domain("") == "docker.io"


def test_platform_parsing_and_default():
    assert mf.parse_platform("linux/arm64/v8") == {"os": "linux", "architecture": "arm64", "variant": ""}
    assert mf.parse_platform("linux/aarch64") == {"os": "linux", "architecture": "arm64", "variant": ""}
    assert mf.parse_platform("linux/arm") == {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert mf.parse_platform("linux/x86_64") == {"os": "linux", "architecture": "amd64", "variant": ""}
    assert mf.default_platform()["os"] == "linux"
    for bad in ("", "linux//v7", "a/b/c/d"):
        with pytest.raises(BadManifest, match="invalid platform"):
            mf.parse_platform(bad)


def _index(entries):
    return mf.parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX,
                                         "manifests": entries}).encode())


def _entry(n, os_="linux", arch="amd64", variant=None, annotations=None):
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    d = {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + ("%x" % n) * 64, "size": 100, "platform": p}
    if annotations:
        d["annotations"] = annotations
    return d


def test_select_platform_variants_and_attestations():
    idx = _index([
        _entry(1, "unknown", "unknown", annotations={"vnd.docker.reference.type": "attestation-manifest"}),
        _entry(2, arch="arm", variant="v6"), _entry(3, arch="arm", variant="v7"),
        _entry(4, arch="arm64", variant="v8"), _entry(5, arch="amd64"), _entry(6, "windows", "amd64"),
    ])
    pick = lambda s: mf.select_platform(idx, mf.parse_platform(s)).digest[7:8]
    assert pick("linux/arm/v7") == "3" and pick("linux/arm/v6") == "2"
    assert pick("linux/arm64") == "4" and pick("linux/arm64/v8") == "4"
    assert pick("linux/amd64") == "5" and pick("windows/amd64") == "6"
    with pytest.raises(NoMatchingPlatform) as e:
        pick("linux/arm/v5")
    assert "linux/arm/v5" in str(e.value) and "linux/arm/v7" in str(e.value) and "unknown" not in str(e.value)
    only_att = _index([_entry(1, "unknown", "unknown")])
    with pytest.raises(NoMatchingPlatform):
        mf.select_platform(only_att, mf.parse_platform("linux/amd64"))


def test_parse_manifest_validation():
    good = {"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
            "config": {"mediaType": mf.DOCKER_CONFIG, "digest": "sha256:" + "a" * 64, "size": 10},
            "layers": [{"mediaType": mf.DOCKER_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": 20}]}
    raw = json.dumps(good).encode()
    m = mf.parse_manifest(raw, expected_digest=mf.sha256_digest(raw))
    assert m.kind == "image" and m.layers[0].size == 20 and m.digest == mf.sha256_digest(raw)
    oci = dict(good, mediaType=None)
    del oci["mediaType"]
    assert mf.parse_manifest(json.dumps(oci).encode(), mf.OCI_MANIFEST + "; charset=utf-8").media_type == mf.OCI_MANIFEST
    cases = [
        (b"x" * (mf.MAX_MANIFEST_SIZE + 1), "too large"),
        (b"[1, 2", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (json.dumps(dict(good, schemaVersion=1)).encode(), "schema version 1"),
        (json.dumps(dict(good, mediaType="application/x-other")).encode(), "unsupported manifest media type"),
        (json.dumps(dict(good, layers=[{"digest": "md5:00", "size": 1}])).encode(), "layers\\[0\\] has no valid"),
        (json.dumps(dict(good, config={"digest": "sha256:" + "a" * 64, "size": -1})).encode(), "config has no valid size"),
    ]
    for body, msg in cases:
        with pytest.raises(BadManifest, match=msg):
            mf.parse_manifest(body)
    with pytest.raises(BadManifest, match="digest mismatch"):
        mf.parse_manifest(raw, expected_digest="sha256:" + "0" * 64)


def test_progress_rendering():
    assert progress.human_size(512) == "512B"
    assert progress.human_size(1234567) == "1.235MB"
    assert progress.progress_bar(50, 100) == "[" + "=" * 25 + ">" + " " * 25 + "]      50B/100B"
    assert progress.progress_bar(100, 100).startswith("[" + "=" * 50 + ">]")
    assert progress.short_id("sha256:" + "ab" * 32) == "abababababab"
    got = []
    p = progress.Progress(got.append)
    p.status("Pulling fs layer", id="abc", detail=True)
    p.bar("Downloading", "abc", 1, 10)
    p.bar("Downloading", "abc", 2, 10)  # throttled
    p.bar("Downloading", "abc", 10, 10)  # the last one always goes out
    assert got[0] == {"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"}
    assert [g["progressDetail"]["current"] for g in got[1:]] == [1, 10]


def test_chain_ids():
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    import hashlib
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(("%s %s" % (a, b)).encode()).hexdigest()]


def test_search_terms_and_hub_shape():
    assert search.split_term("redis") == ("docker.io", "redis")
    assert search.split_term("bitnami/redis") == ("docker.io", "bitnami/redis")
    assert search.split_term("myreg:5000/team") == ("myreg:5000", "team")
    assert search.split_term("localhost/app") == ("localhost", "app")
    with pytest.raises(InvalidParameter):
        search.split_term("  ")
    hub = {"name": "redis", "description": "Redis is…", "star_count": 12000, "is_official": True,
           "is_automated": False, "extra": 1}
    assert search.hub_result(hub) == {"name": "redis", "description": "Redis is…", "star_count": 12000,
                                      "is_official": True, "is_automated": False}
    results = [search.hub_result(hub), search.hub_result({"name": "x/redis", "star_count": 3})]
    assert [r["name"] for r in search._apply_filters(results, {"is-official": ["true"]})] == ["redis"]
    assert [r["name"] for r in search._apply_filters(results, {"stars": ["5"]})] == ["redis"]
    with pytest.raises(InvalidParameter, match="stars"):
        search._apply_filters(results, {"stars": ["many"]})
