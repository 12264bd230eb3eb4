"""Volume store and mount specs, on a temp root (no containers needed)."""

import os

import pytest

from hostbridge.guest.errors import Conflict, InvalidParameter, NotFound
from hostbridge.guest.volumes.mounts import parse_bind, tmpfs_options
from hostbridge.guest.volumes.store import ANON_LABEL, VolumeStore


def test_create_inspect_list_remove(tmp_path):
    vs = VolumeStore(str(tmp_path))
    v, created = vs.create("data", labels={"a": "1"})
    assert created and v["Name"] == "data" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Mountpoint"] == str(tmp_path / "volumes" / "data" / "_data") and os.path.isdir(v["Mountpoint"])
    again, created = vs.create("data")
    assert not created and again["CreatedAt"] == v["CreatedAt"]
    assert vs.get("data")["Labels"] == {"a": "1"}
    assert [x["Name"] for x in vs.list({}, set())["Volumes"]] == ["data"]
    assert vs.list({"label": ["a=2"]}, set())["Volumes"] == []
    assert vs.list({"dangling": ["true"]}, {"data"})["Volumes"] == []
    with pytest.raises(Conflict, match="volume is in use - \\[abc\\]"):
        vs.remove("data", {"abc"})
    vs.remove("data")
    with pytest.raises(NotFound, match="no such volume"):
        vs.get("data")


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "a..b", "-x", ""])
def test_bad_names_refused(tmp_path, name):
    vs = VolumeStore(str(tmp_path))
    with pytest.raises(InvalidParameter, match="invalid volume name"):
        vs.create(name) if name else vs.create("/")
    assert os.listdir(vs.dir) == []


def test_get_with_traversal_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        VolumeStore(str(tmp_path)).get("..")


def test_prune_takes_anonymous_only_unless_all(tmp_path):
    vs = VolumeStore(str(tmp_path))
    anon, _ = vs.create(None)
    assert ANON_LABEL in anon["Labels"] and len(anon["Name"]) == 64
    vs.create("named")
    vs.create("kept")
    out = vs.prune({}, in_use={"kept"})
    assert out["VolumesDeleted"] == [anon["Name"]]
    out = vs.prune({"all": ["true"]}, in_use={"kept"})
    assert out["VolumesDeleted"] == ["named"]
    assert [m["Name"] for m in vs.all()] == ["kept"]


def test_driver_options_refused(tmp_path):
    with pytest.raises(InvalidParameter, match="driver"):
        VolumeStore(str(tmp_path)).create("x", driver="nfs")


def test_parse_bind():
    assert parse_bind("/h:/c:ro") == {"src": "/h", "dst": "/c", "rw": False, "mode": "ro", "nocopy": False,
                                      "propagation": ""}
    assert parse_bind("vol:/c/../d")["dst"] == "/d"
    assert parse_bind("/anon")["src"] == ""
    assert parse_bind("v:/c:nocopy,rw")["nocopy"] is True
    with pytest.raises(InvalidParameter, match="absolute"):
        parse_bind("/h:rel")
    with pytest.raises(InvalidParameter, match="unknown option"):
        parse_bind("/h:/c:bogus")


def test_tmpfs_options():
    assert tmpfs_options({"SizeBytes": 1048576, "Mode": 0o1777}) == ["size=1048576", "mode=1777"]


def test_local_driver_options_are_checked_as_dockerd_does():
    from hostbridge.guest.volumes.store import check_options

    assert check_options("v", None) is None and check_options("v", {}) is None
    opts = {"type": "none", "o": "bind", "device": "/srv/x"}
    assert check_options("v", opts) == opts
    for bad, message in (({"foo": "bar"}, 'create v: invalid option: "foo"'),
                         ({"type": "tmpfs"}, 'create v: missing required option: "device"'),
                         ({"device": "/x"}, 'create v: missing required option: "type"'),
                         ({"type": "none", "o": "bind", "device": "/x", "size": "1g"}, "no quota support"),
                         ({"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}, "only a host directory")):
        with pytest.raises(InvalidParameter, match=message):
            check_options("v", bad)
