"""The image store: import, list/inspect shapes, tags, resolve, delete and prune semantics."""

import io
import os
import stat
import threading

import pytest

from hostbridge.guest.errors import Conflict, InvalidParameter, NotFound, UnsafeArchive
from hostbridge.guest.images.store import ImageStore

pytestmark = pytest.mark.root  # layers keep uids (chown) and whiteouts (mknod): root as in the engine


@pytest.fixture
def busybox(store, busybox_rootfs_tar):
    with open(busybox_rootfs_tar, "rb") as f:
        return store.import_rootfs(f, "busybox:latest", ['CMD ["sh"]', "ENV A=1 B=two",
                                                         "LABEL team=core", "WORKDIR /srv",
                                                         "EXPOSE 80 53/udp", "USER ana",
                                                         'VOLUME ["/data"]'])


def commit_file(store, parent, tmp_path, name, data=b"x", ref=None, **kw):
    upper = tmp_path / ("upper-" + name.replace("/", "_"))
    (upper / name).parent.mkdir(parents=True)
    (upper / name).write_bytes(data)
    return store.commit(parent, str(upper), ref=ref, **kw)


def test_import_list_shape(store, busybox):
    [s] = store.list()
    assert s == {"Containers": -1, "Created": s["Created"], "Id": busybox, "Labels": {"team": "core"},
                 "ParentId": "", "RepoDigests": [], "RepoTags": ["busybox:latest"],
                 "SharedSize": -1, "Size": s["Size"]}
    assert isinstance(s["Created"], int) and s["Created"] > 1_600_000_000
    # docker's size: file bytes plus symlink target lengths (every applet is a symlink)
    links = [n for n in os.listdir(store.lower_dirs(busybox)[0] + "/bin") if n != "busybox"]
    assert s["Size"] > os.path.getsize("/bin/busybox") + len(links) * len("/bin/busybox")


def test_inspect_shape(store, busybox):
    i = store.inspect(busybox)
    assert i["Id"] == busybox and i["RepoTags"] == ["busybox:latest"] and i["RepoDigests"] == []
    assert i["Parent"] == "" and i["Comment"] == "Imported from -" and i["Os"] == "linux"
    assert i["Architecture"] in ("amd64", "arm64") and i["Created"].endswith("Z")
    c = i["Config"]
    assert c["Cmd"] == ["sh"] and c["Env"] == ["A=1", "B=two"] and c["WorkingDir"] == "/srv"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["User"] == "ana"
    assert c["Volumes"] == {"/data": {}} and c["Labels"] == {"team": "core"}
    assert i["RootFS"]["Type"] == "layers" and len(i["RootFS"]["Layers"]) == 1
    assert i["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    gd = i["GraphDriver"]
    if store.driver == "overlay":
        assert gd["Name"] == "overlay2" and os.path.isfile(gd["Data"]["UpperDir"] + "/bin/busybox")
    else:
        assert gd == {"Data": None, "Name": "vfs"}


def test_resolve_forms(store, busybox):
    hexid = busybox[7:]
    for form in (busybox, hexid, hexid[:12], hexid[:1], "sha256:" + hexid[:5], "busybox",
                 "busybox:latest", "docker.io/library/busybox:latest"):
        assert store.resolve(form) == busybox, form
    with pytest.raises(NotFound, match="^No such image: busybox:1$"):
        store.resolve("busybox:1")
    with pytest.raises(NotFound, match="^No such image: nosuch:latest$"):
        store.resolve("nosuch")


def test_ambiguous_prefix(store, busybox, tmp_path):
    ids = {busybox}
    while True:  # commits until two ids share a first digit (bounded: 17 ids must collide)
        ids.add(commit_file(store, busybox, tmp_path, "f%d" % len(ids)))
        firsts = [i[7] for i in ids]
        dup = next((c for c in firsts if firsts.count(c) > 1), None)
        if dup:
            break
        assert len(ids) <= 17
    with pytest.raises(InvalidParameter, match="ambiguous"):
        store.resolve(dup)


def test_tag_untag_and_delete_last(store, busybox):
    store.tag(busybox, "localhost:5000/team/app:1.0")
    store.tag(busybox, "other")
    assert sorted(store.inspect(busybox)["RepoTags"]) == \
        ["busybox:latest", "localhost:5000/team/app:1.0", "other:latest"]
    assert store.delete("other") == [{"Untagged": "other:latest"}]
    assert store.delete("localhost:5000/team/app:1.0") == [{"Untagged": "localhost:5000/team/app:1.0"}]
    layer = store.chains(busybox)[0]
    assert store.delete("busybox") == [{"Untagged": "busybox:latest"}, {"Deleted": busybox},
                                       {"Deleted": layer}]
    assert store.list() == [] and not os.path.exists(store.layers.path(layer))


def test_delete_by_id_with_several_tags_needs_force(store, busybox):
    store.tag(busybox, "b2:x")
    with pytest.raises(Conflict, match=r"^conflict: unable to delete %s \(must be forced\) - image is "
                       r"referenced in multiple repositories$" % busybox[7:19]):
        store.delete(busybox[7:19])
    recs = store.delete(busybox[7:19], force=True)
    assert {"Untagged": "b2:x"} in recs and {"Untagged": "busybox:latest"} in recs
    assert {"Deleted": busybox} in recs


def test_delete_by_id_single_tag_untags(store, busybox):
    recs = store.delete(busybox)
    assert recs[0] == {"Untagged": "busybox:latest"} and recs[1] == {"Deleted": busybox}


def test_delete_refuses_images_in_use(store, busybox):
    cid = "c" * 64
    with pytest.raises(Conflict, match=r"cannot be forced\) - image is being used by running "
                       r"container cccccccccccc"):
        store.delete(busybox, force=True, in_use={busybox: [(cid, True)]})
    with pytest.raises(Conflict, match=r"unable to remove repository reference \"busybox\" \(must "
                       r"force\) - container cccccccccccc is using"):
        store.delete("busybox", in_use={busybox: [(cid, False)]})
    with pytest.raises(Conflict, match="must be forced"):
        store.delete(busybox, in_use={busybox: [(cid, False)]})
    # forced: the config goes, the layers stay for the stopped container
    layer = store.chains(busybox)[0]
    recs = store.delete(busybox, force=True, in_use={busybox: [(cid, False)]})
    assert {"Deleted": busybox} in recs and len([r for r in recs if "Deleted" in r]) == 1
    assert os.path.isdir(store.layers.diff_dir(layer))
    # a prune while the container lives keeps them; once it is gone they go
    store.prune(in_use={busybox: [(cid, False)]})
    assert os.path.isdir(store.layers.diff_dir(layer))
    store.prune(in_use={})
    assert not os.path.exists(store.layers.path(layer))


def test_shared_layers_stay(store, busybox, tmp_path):
    child = commit_file(store, busybox, tmp_path, "hello", b"hi", ref="child:1")
    with pytest.raises(Conflict, match=r"cannot be forced\) - image has dependent child images"):
        store.delete(busybox, force=True)
    store.delete("busybox")  # untag only: the child still needs it
    assert busybox in store.images
    base_layer = store.chains(busybox)[0]
    recs = store.delete("child:1")
    top = store.chains(child)[-1] if child in store.images else None
    assert top is None
    # the child's own layer and then (prune) its untagged parent with the base layer went
    assert recs[0] == {"Untagged": "child:1"} and {"Deleted": child} in recs
    assert {"Deleted": busybox} in recs and {"Deleted": base_layer} in recs
    assert store.layers.all() == []


def test_two_images_share_base_layer(store, busybox, tmp_path):
    a = commit_file(store, busybox, tmp_path, "a", ref="a")
    b = commit_file(store, busybox, tmp_path, "b", ref="b")
    base = store.chains(busybox)[0]
    assert store.chains(a)[0] == store.chains(b)[0] == base
    store.delete("a")
    assert os.path.isdir(store.layers.diff_dir(base)) and b in store.images


def test_history_shape(store, busybox, tmp_path):
    child = commit_file(store, busybox, tmp_path, "x", b"12345", ref="child",
                        author="ana", comment="added x", created_by="sh -c touch x")
    empty = store.commit(child, None, changes=["CMD [\"true\"]"], created_by="/bin/sh -c #(nop) CMD")
    h = store.history(empty)
    assert [e["Id"] for e in h] == [empty, child, busybox]
    assert h[0]["Size"] == 0 and h[0]["CreatedBy"] == "/bin/sh -c #(nop) CMD" and h[0]["Tags"] is None
    assert h[1]["Size"] == 5 and h[1]["Comment"] == "added x" and h[1]["Tags"] == ["child:latest"]
    assert h[2]["Tags"] == ["busybox:latest"] and h[2]["Comment"] == "Imported from -"
    assert set(h[0]) == {"Id", "Created", "CreatedBy", "Tags", "Size", "Comment"}
    assert isinstance(h[0]["Created"], int)
    # an inherited entry whose image is not here shows as <missing>
    store.delete("busybox")  # untag; the parent stays (child needs it) ...
    store.images[child]["meta"]["parent"] = ""  # ... and now pretend it came from elsewhere
    assert [e["Id"] for e in store.history(child)] == [child, "<missing>"]


def test_commit_records_config_and_lower_dirs(store, busybox, tmp_path):
    child = commit_file(store, busybox, tmp_path, "etc/motd", b"hi", ref="c",
                        changes=["ENV X=1"], container_id="d" * 64)
    cfg = store.config(child)
    assert cfg["container"] == "d" * 64 and "X=1" in cfg["config"]["Env"]
    assert store.inspect(child)["Parent"] == busybox
    lowers = store.lower_dirs(child)
    assert len(lowers) == 2 and os.path.isfile(os.path.join(lowers[0], "etc/motd"))
    assert os.path.isfile(os.path.join(lowers[1], "bin/busybox"))


def test_materialize_applies_whiteouts(store, busybox, tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "passwd", stat.S_IFCHR | 0o600, 0)
    (upper / "etc" / "new").write_bytes(b"n")
    child = store.commit(busybox, str(upper))
    dest = tmp_path / "rootfs"
    dest.mkdir()
    store.materialize(child, str(dest))
    assert sorted(os.listdir(dest / "etc")) == ["group", "hostname", "new"]
    assert os.path.islink(dest / "bin" / "sh") and os.path.isfile(dest / "bin" / "busybox")


def test_list_filters(store, busybox, tmp_path):
    child = commit_file(store, busybox, tmp_path, "x", ref="app:v1", changes=["LABEL tier=web"])
    dangling = store.commit(busybox, None)
    ids = lambda **kw: [s["Id"] for s in store.list(**kw)]  # noqa: E731
    assert set(ids()) == {busybox, child, dangling}
    assert ids(filters={"dangling": ["true"]}) == [dangling]
    assert dangling not in ids(filters={"dangling": {"false": True}})
    assert ids(filters={"label": ["tier=web"]}) == [child]
    assert set(ids(filters={"label": ["team"]})) == {busybox, child, dangling}
    assert ids(filters={"reference": ["app:*"]}) == [child]
    assert ids(filters={"reference": ["app"]}) == [child]
    assert ids(filters={"reference": ["b*"]}) == [busybox]
    with pytest.raises(InvalidParameter, match="Invalid filter 'bogus'"):
        store.list(filters={"bogus": ["1"]})
    # untag the busybox parent: it becomes an intermediate image, hidden unless all
    store.delete("busybox")
    assert busybox not in ids() and busybox in ids(all=True)
    # before/since compare Created seconds; an image is neither before nor since itself
    assert ids(filters={"before": [child], "since": [child]}) == []


def test_prune(store, busybox, tmp_path):
    dangling = store.commit(busybox, None)
    res = store.prune()
    assert res["ImagesDeleted"] == [{"Deleted": dangling}] and res["SpaceReclaimed"] == 0
    used = commit_file(store, busybox, tmp_path, "x", ref="used")
    res = store.prune(dangling_only=False, in_use={used: [("e" * 64, False)]})
    # as moby: the tagged parent of a used image loses its tag but stays
    assert busybox in store.images and used in store.images
    assert res == {"ImagesDeleted": [{"Untagged": "busybox:latest"}], "SpaceReclaimed": 0}
    res = store.prune(dangling_only=False)
    assert {"Untagged": "used:latest"} in res["ImagesDeleted"] and store.images == {}
    assert res["SpaceReclaimed"] > os.path.getsize("/bin/busybox")


def test_import_changes_rejected_before_reading(store, busybox_rootfs_tar, state_of):
    before = state_of(store)
    with pytest.raises(InvalidParameter, match="FROM is not a valid change command"):
        store.import_rootfs(io.BytesIO(b""), "x", ["FROM busybox"])
    with pytest.raises(InvalidParameter):
        store.import_rootfs(io.BytesIO(b""), "Bad:Ref!")
    assert state_of(store) == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_import_bad_tar_leaves_store_unchanged(store, busybox, busybox_rootfs_tar, state_of, damage):
    with open(busybox_rootfs_tar, "rb") as f:
        data = f.read()
    bad = {"truncate": data[:len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage]
    before = state_of(store)
    with pytest.raises(InvalidParameter):
        store.import_rootfs(io.BytesIO(bad), "broken:1")
    assert state_of(store) == before


def test_state_survives_restart(store, busybox):
    store.tag(busybox, "again:2")
    again = ImageStore(os.path.dirname(store.root), storage_driver=store.driver)
    assert again.resolve("again:2") == busybox and again.inspect(busybox) == store.inspect(busybox)


def test_digest_references(store, busybox):
    digest = "sha256:" + "ab" * 32
    store.tag(busybox, "registry.local:5000/bb:1.0@" + digest)  # a tag with it is dropped
    store.tag(busybox, "registry.local:5000/bb:1.0")
    assert store.inspect(busybox)["RepoDigests"] == ["registry.local:5000/bb@" + digest]
    assert store.resolve("registry.local:5000/bb@" + digest) == busybox
    # untagging the repository's last tag also drops its digests (moby)
    recs = store.delete("registry.local:5000/bb:1.0")
    assert recs == [{"Untagged": "registry.local:5000/bb:1.0"},
                    {"Untagged": "registry.local:5000/bb@" + digest}]
    with pytest.raises(InvalidParameter, match="cannot be named by digest"):
        store.commit(busybox, None, ref="x@" + digest)


def test_prune_removes_orphan_layers(store, busybox, tmp_path):
    upper = tmp_path / "orphan"
    upper.mkdir()
    (upper / "f").write_bytes(b"1")
    diff_id = store.layer_from_dir(str(upper), busybox)
    orphan = [c for c in store.layers.all() if c not in store.chains(busybox)]
    assert len(orphan) == 1 and store.layers.meta(orphan[0])["diff_id"] == diff_id
    store.prune()
    assert store.layers.all() == store.chains(busybox)


def test_resolve_invalid_reference(store):
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        store.resolve("Not/Valid!")


class _Watched:
    """A stream that, halfway through, checks from another thread what others would see."""

    def __init__(self, data, store):
        self.f, self.store, self.half = io.BytesIO(data), store, len(data) // 2
        self.seen = None

    def read(self, n=-1):
        if self.seen is None and self.f.tell() >= self.half:
            out = {}

            def look():
                got = self.store.lock.acquire(timeout=5)
                out["lock"] = got
                out["layers"] = os.listdir(os.path.join(self.store.root, "layers"))
                out["list"] = self.store.list()
                if got:
                    self.store.lock.release()

            t = threading.Thread(target=look)
            t.start()
            t.join(10)
            self.seen = out
        return self.f.read(n)


def test_import_holds_no_lock_and_shows_nothing_partial(store, busybox_rootfs_tar):
    with open(busybox_rootfs_tar, "rb") as f:
        watched = _Watched(f.read(), store)
    iid = store.import_rootfs(watched, "bb")
    assert watched.seen == {"lock": True, "layers": [], "list": []}
    assert store.resolve("bb") == iid


def test_driver_probe_leaves_no_mount(store):
    assert store.driver in ("overlay", "vfs")
    with open("/proc/self/mounts") as f:
        assert store.root not in f.read()
    assert os.listdir(store.tmp) == []


def test_import_hostile_tar_leaves_store_unchanged(store, busybox, make_tar, state_of, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    before = state_of(store)
    for members in ([("ok", "file"), ("../../../../x", "file")],
                    [("l", "symlink", {"link": str(outside)}), ("l/x", "file")]):
        with pytest.raises(UnsafeArchive):
            store.import_rootfs(io.BytesIO(make_tar(members)), "evil:1")
        assert state_of(store) == before
    assert os.listdir(outside) == []
