"""Bad input and faults: corrupted/truncated blobs, a registry killed mid-pull, error statuses,
oversized and malformed manifests. The fault proxy sits on 127.0.0.1 in front of docker-registry."""

import json
import os

import pytest

from hostbridge.guest.registry import client as rc
from hostbridge.guest.registry import manifest as mf
from hostbridge.guest.registry import pull, push
from hostbridge.guest.registry.errors import (BadManifest, BlobVerificationError, Denied, RegistryNotFound,
                                              RegistryUnavailable, TooManyRequests)
from tests.registry import regsupport

CFG = rc.RegistryConfig(retries=2, backoff=0.05, timeout=10)


def _push_three(tmp_path, domain, sizes=(20000, 30000, 3 << 20)):
    """Three layers of random bytes (incompressible), pushed; returns (manifest, image id)."""
    tars = [regsupport.small_layer_tar(str(tmp_path / ("l%d.tar" % i)), {"f%d" % i: os.urandom(n)})
            for i, n in enumerate(sizes)]
    cfg = regsupport.image_config([regsupport.file_digest(t) for t in tars])
    push.push("%s/faulty:1" % domain, cfg, tars, config=CFG)
    m = mf.fetch(rc.RegistryClient(domain, config=CFG), "faulty", "1", ["repository:faulty:pull"])
    return m, m.config.digest


def _blob_gets(proxy, digest):
    return [(p, r) for (meth, p, r) in proxy.log if meth == "GET" and p.endswith("/blobs/" + digest)]


def test_corrupted_blob_fails_and_leaves_nothing(tmp_path, registry, proxy):
    m, _ = _push_three(tmp_path, registry.domain)
    proxy.corrupt.add(m.layers[1].digest)
    store, dl = regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl")
    with pytest.raises(BlobVerificationError) as e:
        pull.pull("%s/faulty:1" % proxy.domain, store, dl, config=CFG)
    assert "digest mismatch" in str(e.value) and m.layers[1].digest in str(e.value)
    assert os.listdir(dl) == []
    assert os.listdir(os.path.join(store.root, "layers")) == []
    with pytest.raises(Exception):
        store.resolve("%s/faulty:1" % proxy.domain)


def test_truncated_once_resumes_with_range(tmp_path, registry, proxy):
    m, image_id = _push_three(tmp_path, registry.domain)
    big = m.layers[2].digest
    proxy.cut[big] = 1
    got = pull.pull("%s/faulty:1" % proxy.domain, regsupport.new_store(str(tmp_path / "s")),
                    str(tmp_path / "dl"), config=CFG)
    assert got.image_id == image_id
    gets = _blob_gets(proxy, big)
    assert len(gets) == 2 and gets[0][1] is None
    assert gets[1][1] == "bytes=%d-" % (m.layers[2].size // 2)  # resumed where the cut was


def test_always_truncated_fails_without_partial_files(tmp_path, registry, proxy):
    m, _ = _push_three(tmp_path, registry.domain)
    proxy.cut[m.layers[2].digest] = 100
    dl = str(tmp_path / "dl")
    with pytest.raises(BlobVerificationError, match="kept breaking off"):
        pull.pull("%s/faulty:1" % proxy.domain, regsupport.new_store(str(tmp_path / "s")), dl, config=CFG)
    assert os.listdir(dl) == []
    assert len(_blob_gets(proxy, m.layers[2].digest)) == CFG.retries + 1  # bounded


def test_registry_killed_mid_pull_then_retry_reuses_layers(tmp_path, registry, proxy):
    m, image_id = _push_three(tmp_path, registry.domain)
    big = m.layers[2].digest
    proxy.on_blob_half = lambda path: registry.kill()
    store, dl = regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl")
    with pytest.raises(RegistryUnavailable) as e:
        pull.pull("%s/faulty:1" % proxy.domain, store, dl, config=CFG, max_parallel=1)
    msg = str(e.value)
    assert msg.startswith("cannot reach registry %s" % proxy.domain) and "retry" in msg and "\n" not in msg
    left = sorted(os.listdir(dl))
    assert left == sorted([m.layers[0].digest[7:], m.layers[1].digest[7:], big[7:] + ".partial"])

    registry.start()
    proxy.log.clear()
    got = pull.pull("%s/faulty:1" % proxy.domain, store, dl, config=CFG, max_parallel=1)
    assert got.image_id == image_id
    assert _blob_gets(proxy, m.layers[0].digest) == [] and _blob_gets(proxy, m.layers[1].digest) == []
    (path, rng), = _blob_gets(proxy, big)
    assert rng is not None and rng.startswith("bytes=") and rng != "bytes=0-"
    assert os.listdir(dl) == []


def _error_body(code, message):
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


def test_error_statuses_give_one_line_hints(tmp_path, registry, proxy):
    _push_three(tmp_path, registry.domain, sizes=(100, 100, 100))
    d = proxy.domain
    store, dl = regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl")

    with pytest.raises(RegistryNotFound) as e:
        pull.pull("%s/faulty:nope" % d, store, dl, config=CFG)
    assert "manifest for %s/faulty:nope not found" % d in str(e.value) and "check the name" in str(e.value)

    proxy.rules.append(lambda h, meth, p: "/manifests/forbidden" in p and regsupport.reply(
        h, 403, _error_body("DENIED", "requested access to the resource is denied")) is None)
    with pytest.raises(Denied) as e:
        pull.pull("%s/faulty:forbidden" % d, store, dl, config=CFG)
    assert str(e.value).startswith("denied:") and "hostbridge login" in str(e.value) and e.value.status == 403

    proxy.rules.append(lambda h, meth, p: "/manifests/busy" in p and regsupport.reply(
        h, 429, _error_body("TOOMANYREQUESTS", "slow down")) is None)
    with pytest.raises(TooManyRequests) as e:
        pull.pull("%s/faulty:busy" % d, store, dl, config=CFG)
    assert str(e.value).startswith("toomanyrequests:") and "wait and retry" in str(e.value)
    for err in (e.value,):
        assert "\n" not in str(err)

    # 5xx is retried (bounded), then reported
    proxy.rules.append(lambda h, meth, p: "/manifests/broken" in p and regsupport.reply(
        h, 503, _error_body("UNAVAILABLE", "maintenance")) is None)
    with pytest.raises(RegistryUnavailable, match="503"):
        pull.pull("%s/faulty:broken" % d, store, dl, config=CFG)
    assert sum(1 for (_, p, _) in proxy.log if "/manifests/broken" in p) == CFG.retries + 1


def test_oversized_and_malformed_manifests_are_refused(tmp_path, registry, proxy):
    d = proxy.domain
    store, dl = regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl")
    huge = b'{"schemaVersion": 2, "pad": "' + b"x" * (mf.MAX_MANIFEST_SIZE + 10) + b'"}'
    proxy.rules.append(lambda h, meth, p: "/manifests/huge" in p and regsupport.reply(
        h, 200, huge, mf.DOCKER_MANIFEST) is None)
    proxy.rules.append(lambda h, meth, p: "/manifests/garbage" in p and regsupport.reply(
        h, 200, b"{not json", mf.DOCKER_MANIFEST) is None)
    proxy.rules.append(lambda h, meth, p: "/manifests/nolayers" in p and regsupport.reply(
        h, 200, json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
                            "config": {"digest": "sha256:" + "a" * 64, "size": 2}}).encode(),
        mf.DOCKER_MANIFEST) is None)
    with pytest.raises(BadManifest, match="manifest too large"):
        pull.pull("%s/x:huge" % d, store, dl, config=CFG)
    with pytest.raises(BadManifest, match="not valid JSON"):
        pull.pull("%s/x:garbage" % d, store, dl, config=CFG)
    with pytest.raises(BadManifest, match="no layers array"):
        pull.pull("%s/x:nolayers" % d, store, dl, config=CFG)


def test_manifest_by_digest_is_verified(tmp_path, registry, proxy):
    m, _ = _push_three(tmp_path, registry.domain, sizes=(100, 100, 100))
    other = b'{"schemaVersion": 2, "mediaType": "%s", "config": {"digest": "sha256:%s", "size": 1}, "layers": []}' % (
        mf.DOCKER_MANIFEST.encode(), b"b" * 64)
    proxy.rules.append(lambda h, meth, p: p.endswith("/manifests/" + m.digest) and regsupport.reply(
        h, 200, other, mf.DOCKER_MANIFEST) is None)
    with pytest.raises(BadManifest, match="manifest digest mismatch"):
        pull.pull("%s/faulty@%s" % (proxy.domain, m.digest), regsupport.new_store(str(tmp_path / "s")),
                  str(tmp_path / "dl"), config=CFG)


def test_no_progress_before_the_manifest_resolves(tmp_path, registry):
    msgs = []
    with pytest.raises(RegistryNotFound):
        pull.pull("%s/nothing:here" % registry.domain, regsupport.new_store(str(tmp_path / "s")),
                  str(tmp_path / "dl"), config=CFG, progress=msgs.append)
    assert msgs == []


def test_diff_id_mismatch_is_refused_by_the_store_and_leaves_nothing(tmp_path, registry):
    tar = regsupport.small_layer_tar(str(tmp_path / "l.tar"), {"x": os.urandom(1000)})
    lying = regsupport.image_config(["sha256:" + "0" * 64])  # config claims another DiffID
    push.push("%s/liar:1" % registry.domain, lying, [tar], config=CFG)
    store, dl = regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl")
    with pytest.raises(Exception, match="does not match its image config"):
        pull.pull("%s/liar:1" % registry.domain, store, dl, config=CFG)
    assert os.listdir(dl) == [] and os.listdir(os.path.join(store.root, "layers")) == []


def test_client_gone_mid_pull_stops_without_retrying(tmp_path, registry, proxy):
    from hostbridge.guest.registry.progress import ProgressAborted
    m, _ = _push_three(tmp_path, registry.domain)
    seen = []

    def consumer(msg):
        seen.append(msg)
        if msg.get("status") == "Downloading":
            raise BrokenPipeError("client went away")
    dl = str(tmp_path / "dl")
    with pytest.raises(ProgressAborted, match="client went away"):
        pull.pull("%s/faulty:1" % proxy.domain, regsupport.new_store(str(tmp_path / "s")), dl, config=CFG,
                  progress=consumer, max_parallel=1)
    assert len(_blob_gets(proxy, m.layers[0].digest)) == 1  # not retried as if the registry broke
    assert os.listdir(dl) == []
