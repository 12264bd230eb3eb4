"""Push an image built from the busybox rootfs to a real docker-registry, pull it back."""

import hashlib
import json
import os

import pytest

from hostbridge.guest.registry import manifest as mf
from hostbridge.guest.registry import pull, push
from hostbridge.guest.registry.client import RegistryClient, RegistryConfig
from tests.registry import regsupport

CFG = RegistryConfig(retries=2, backoff=0.05, timeout=10)


@pytest.fixture
def image(tmp_path, busybox_rootfs_tar):
    """(config_bytes, [layer tars], [diff_ids]): busybox rootfs + a small layer on top."""
    top = regsupport.small_layer_tar(str(tmp_path / "top.tar"), {"etc/motd": b"hello from the test\n",
                                                                 "srv/data.bin": os.urandom(300000)})
    tars = [busybox_rootfs_tar, top]
    diff_ids = [regsupport.file_digest(t) for t in tars]
    return regsupport.image_config(diff_ids), tars, diff_ids


def test_push_then_pull_by_tag_and_digest(tmp_path, registry, image):
    cfg_bytes, tars, diff_ids = image
    msgs = []
    name = "%s/team/app:1.0" % registry.domain
    res = push.push(name, cfg_bytes, tars, config=CFG, progress=msgs.append)
    statuses = [m.get("status") for m in msgs]
    assert statuses[0] == "The push refers to repository [%s/team/app]" % registry.domain
    assert statuses.count("Pushed") == 2 and statuses.count("Preparing") == 2
    assert "Pushing" in statuses
    assert statuses[-1] is None and msgs[-1]["aux"] == res
    assert msgs[-2]["status"] == "1.0: digest: %s size: %d" % (res["Digest"], res["Size"])

    # what the registry holds: a schema2 manifest whose config is our config, layers gzip
    client = RegistryClient(registry.domain, config=CFG)
    m = mf.fetch(client, "team/app", "1.0", ["repository:team/app:pull"])
    assert m.digest == res["Digest"] and m.media_type == mf.DOCKER_MANIFEST
    assert m.config.digest == "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
    assert all(lay.media_type == mf.DOCKER_LAYER_GZIP for lay in m.layers)
    assert [lay.digest for lay in m.layers] != diff_ids  # compressed digests differ from DiffIDs

    store = regsupport.new_store(str(tmp_path / "store"))
    dl = str(tmp_path / "downloads")
    pmsgs = []
    got = pull.pull(name, store, dl, config=CFG, progress=pmsgs.append)
    assert got.image_id == m.config.digest and got.digest == res["Digest"] and not got.up_to_date
    chains = pull.chain_ids(diff_ids)
    for tar, chain in zip(tars, chains):
        assert regsupport.file_digest(store.layers.tar_path(chain)) == regsupport.file_digest(tar)
    assert store.resolve("%s/team/app:1.0" % registry.domain) == got.image_id
    assert store.resolve("%s/team/app@%s" % (registry.domain, res["Digest"])) == got.image_id
    assert os.listdir(dl) == []  # blobs handed over, nothing left behind
    st = [x.get("status") for x in pmsgs]
    assert st[0] == "Pulling from team/app" and pmsgs[0]["id"] == "1.0"
    for s in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
              "Pull complete"):
        assert s in st, s
    dmsg = next(x for x in pmsgs if x.get("status") == "Downloading")
    assert len(dmsg["id"]) == 12 and dmsg["progressDetail"]["total"] > 0 and dmsg["progress"].startswith("[")
    assert st[-2] == "Digest: %s" % res["Digest"]
    assert st[-1] == "Status: Downloaded newer image for %s/team/app:1.0" % registry.domain

    # again: every layer already there → "Already exists", "Image is up to date"
    again = []
    got2 = pull.pull(name, store, dl, config=CFG, progress=again.append)
    assert got2.up_to_date and got2.image_id == got.image_id
    assert [x.get("status") for x in again].count("Already exists") == 2
    assert again[-1]["status"] == "Status: Image is up to date for %s/team/app:1.0" % registry.domain

    # by digest into a fresh store
    store2 = regsupport.new_store(str(tmp_path / "store2"))
    by_digest = pull.pull("%s/team/app@%s" % (registry.domain, res["Digest"]), store2, dl, config=CFG)
    assert by_digest.image_id == got.image_id and by_digest.digest == res["Digest"]


def test_repush_says_layer_exists_and_mounts_across_repos(tmp_path, registry, image):
    cfg_bytes, tars, diff_ids = image
    cache = str(tmp_path / "pushcache")
    push.push("%s/team/app:1" % registry.domain, cfg_bytes, tars, config=CFG, cache_dir=cache)
    msgs = []
    push.push("%s/team/app:2" % registry.domain, cfg_bytes, tars, config=CFG, cache_dir=cache,
              progress=msgs.append)
    assert [m.get("status") for m in msgs].count("Layer already exists") == 2
    msgs = []
    push.push("%s/other/copy:1" % registry.domain, cfg_bytes, tars, config=CFG, cache_dir=cache,
              progress=msgs.append)
    mounted = [m["status"] for m in msgs if m.get("status", "").startswith("Mounted from")]
    assert mounted == ["Mounted from team/app"] * 2


def test_chunked_upload(tmp_path, registry, image):
    cfg_bytes, tars, diff_ids = image
    name = "%s/chunky:1" % registry.domain
    res = push.push(name, cfg_bytes, tars, config=CFG, chunk_size=256 * 1024)
    got = pull.pull(name, regsupport.new_store(str(tmp_path / "s")), str(tmp_path / "dl"), config=CFG)
    assert got.digest == res["Digest"]
    assert got.image_id == "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()


def test_multiarch_index_selects_platform(tmp_path, registry, busybox_rootfs_tar):
    d = registry.domain
    diff = [regsupport.file_digest(busybox_rootfs_tar)]
    cfgs = {"amd64": regsupport.image_config(diff, "amd64"),
            "arm64": regsupport.image_config(diff, "arm64", "v8"),
            "att": regsupport.image_config(diff, "unknown", os_name="unknown")}
    pushed = {k: push.push("%s/multi:%s" % (d, k), c, [busybox_rootfs_tar], config=CFG) for k, c in cfgs.items()}
    entries = [
        {"mediaType": mf.DOCKER_MANIFEST, "digest": pushed["amd64"]["Digest"], "size": pushed["amd64"]["Size"],
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": mf.DOCKER_MANIFEST, "digest": pushed["arm64"]["Digest"], "size": pushed["arm64"]["Size"],
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": mf.DOCKER_MANIFEST, "digest": pushed["att"]["Digest"], "size": pushed["att"]["Size"],
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": pushed["amd64"]["Digest"]}},
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_LIST, "manifests": entries}).encode()
    client = RegistryClient(d, config=CFG)
    idx_digest = push.put_manifest(client, "multi", "latest", index, mf.DOCKER_LIST,
                                   ["repository:multi:pull,push"])
    ids = {k: "sha256:" + hashlib.sha256(c).hexdigest() for k, c in cfgs.items()}
    for plat, want in (("linux/arm64/v8", "arm64"), ("linux/arm64", "arm64"), ("linux/amd64", "amd64")):
        store = regsupport.new_store(str(tmp_path / ("s-" + plat.replace("/", "-"))))
        got = pull.pull("%s/multi" % d, store, str(tmp_path / "dl"), config=CFG, platform=plat)
        assert got.image_id == ids[want], plat
        assert got.digest == idx_digest  # docker records the index digest
    with pytest.raises(mf.NoMatchingPlatform, match="linux/s390x"):
        pull.pull("%s/multi" % d, regsupport.new_store(str(tmp_path / "sx")), str(tmp_path / "dl"),
                  config=CFG, platform="linux/s390x")
