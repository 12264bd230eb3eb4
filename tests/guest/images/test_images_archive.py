"""docker save / load archives: round trips, the OCI layout alone, compressed layers, damage."""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from hostbridge.guest.errors import InvalidParameter, UnsafeArchive
from hostbridge.guest.images.store import ImageStore

pytestmark = pytest.mark.root


@pytest.fixture
def images(store, busybox_rootfs_tar, tmp_path):
    """busybox:latest and a child app:1 one layer above it."""
    with open(busybox_rootfs_tar, "rb") as f:
        base = store.import_rootfs(f, "busybox:latest", ['CMD ["sh"]'])
    upper = tmp_path / "upper"
    (upper / "app").mkdir(parents=True)
    (upper / "app" / "run").write_bytes(b"#!/bin/sh\necho hi\n")
    child = store.commit(base, str(upper), ref="app:1", created_by="COPY run /app/")
    return base, child


def saved(store, names) -> bytes:
    buf = io.BytesIO()
    store.save(names, buf)
    return buf.getvalue()


def members(data: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: (t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}


def pack(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def fresh(tmp_path, name="other"):
    return ImageStore(str(tmp_path / name))


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_save_layout(store, images):
    base, child = images
    files = members(saved(store, ["app:1"]))
    assert {"index.json", "manifest.json", "oci-layout", "repositories"} <= set(files)
    [item] = json.loads(files["manifest.json"])
    assert item["Config"] == "blobs/sha256/" + child[7:] and item["RepoTags"] == ["app:1"]
    assert len(item["Layers"]) == 2 and all(files[p] is not None for p in item["Layers"])
    for p in item["Layers"] + [item["Config"]]:
        assert sha(files[p]) == "sha256:" + p.rsplit("/", 1)[1]
    [desc] = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "docker.io/library/app:1",
                                   "org.opencontainers.image.ref.name": "1"}
    man = json.loads(files["blobs/sha256/" + desc["digest"][7:]])
    assert man["config"]["digest"] == child and [l["digest"] for l in man["layers"]] == \
        store.config(child)["rootfs"]["diff_ids"]


def test_save_delete_load_round_trip(store, images):
    base, child = images
    data = saved(store, ["app:1", "busybox"])
    store.delete("app:1")
    store.delete("busybox")
    assert store.images == {} and store.layers.all() == []
    msgs = store.load(io.BytesIO(data))
    assert msgs == ["Loaded image: app:1", "Loaded image: busybox:latest"]
    assert store.resolve("app:1") == child and store.resolve("busybox") == base
    assert store.inspect(child)["Parent"] == base  # both were saved: the link survives
    assert [h["Id"] for h in store.history(child)] == [child, base]


def test_load_untagged_by_id(store, images, tmp_path):
    base, child = images
    other = fresh(tmp_path)
    assert other.load(io.BytesIO(saved(store, [child[7:19]]))) == ["Loaded image ID: %s" % child]
    assert other.list()[0]["RepoTags"] == [] and other.inspect(child)["Parent"] == ""


def test_load_is_idempotent_and_reports_retag(store, images, tmp_path):
    base, child = images
    data = saved(store, ["busybox"])
    other = fresh(tmp_path)
    other.load(io.BytesIO(data))
    layers = sorted(other.layers.all())
    assert other.load(io.BytesIO(data)) == ["Loaded image: busybox:latest"]
    assert sorted(other.layers.all()) == layers and list(other.images) == [base]
    other.tag(base, "moved:1")
    store.tag(child, "moved:1")
    assert other.load(io.BytesIO(saved(store, ["moved:1"])))[0] == (
        "The image moved:1 already exists, renaming the old one with ID %s to empty string" % base)


def test_load_oci_layout_only_with_gzip_layers(store, images, tmp_path):
    base, child = images
    files = members(saved(store, ["app:1"]))
    del files["manifest.json"], files["repositories"]
    index = json.loads(files["index.json"])
    desc = index["manifests"][0]
    man = json.loads(files.pop("blobs/sha256/" + desc["digest"][7:]))
    for layer in man["layers"]:
        gz = gzip.compress(files.pop("blobs/sha256/" + layer["digest"][7:]))
        files["blobs/sha256/" + sha(gz)[7:]] = gz
        layer.update(digest=sha(gz), size=len(gz),
                     mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    man_bytes = json.dumps(man).encode()
    files["blobs/sha256/" + sha(man_bytes)[7:]] = man_bytes
    desc.update(digest=sha(man_bytes), size=len(man_bytes))
    files["index.json"] = json.dumps(index).encode()
    other = fresh(tmp_path)
    assert other.load(io.BytesIO(gzip.compress(pack(files)))) == ["Loaded image: app:1"]
    assert other.resolve("app:1") == child
    assert other.inspect(child)["RootFS"] == store.inspect(child)["RootFS"]
    assert os.path.isfile(os.path.join(other.lower_dirs(child)[0], "app", "run"))


def _damaged(store, how):
    files = members(saved(store, ["app:1"]))
    [item] = json.loads(files["manifest.json"])
    if how == "layer-bytes":
        p = item["Layers"][1]
        files[p] = files[p][:600] + bytes([files[p][600] ^ 1]) + files[p][601:]
    elif how == "config":
        p = item["Config"]
        files[p] = files[p].replace(b'"os":"linux"', b'"os":"linux" ')
    elif how == "missing-layer":
        del files[item["Layers"][1]]
    elif how == "layer-count":
        item["Layers"] = item["Layers"][:1]
        files["manifest.json"] = json.dumps([item]).encode()
    elif how == "hostile-layer":
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w") as t:
            ti = tarfile.TarInfo("../../escape")
            t.addfile(ti, io.BytesIO(b""))
        files[item["Layers"][1]] = evil.getvalue()
    data = pack(files)
    if how == "truncated":
        data = data[:len(data) // 2]
    if how == "garbage":
        data = os.urandom(50000)
    return data


@pytest.mark.parametrize("how", ["layer-bytes", "config", "missing-layer", "layer-count",
                                 "hostile-layer", "truncated", "garbage"])
def test_damaged_archive_leaves_store_unchanged(store, images, tmp_path, state_of, how):
    data = _damaged(store, how)
    other = fresh(tmp_path)
    # the target store already holds busybox: a failed load must not touch it either
    other.load(io.BytesIO(saved(store, ["busybox"])))
    before = state_of(other)
    with pytest.raises(UnsafeArchive if how == "hostile-layer" else InvalidParameter):
        other.load(io.BytesIO(data))
    assert state_of(other) == before
    # the hostile member aimed two levels above the layer's diff dir: the store's tmp dir
    assert not os.path.exists(os.path.join(other.tmp, "escape"))
