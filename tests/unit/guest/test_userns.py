"""guest/userns.py: the --userns-remap value, /etc/subuid-style ranges, id maps, tar ids."""

import io
import tarfile

import pytest

from hostbridge.guest import userns
from hostbridge.guest.errors import InvalidParameter


@pytest.mark.parametrize("value, expected", [
    ("default", ("hostbridge-remap", "hostbridge-remap")),
    ("alice", ("alice", "")),
    ("alice:staff", ("alice", "staff")),
    ("1000:1000", ("1000", "1000")),
])
def test_parse_option(value, expected):
    assert userns.parse_option(value) == expected


@pytest.mark.parametrize("value", ["", " ", "a:b:c", ":g", "u:", None])
def test_parse_option_refuses(value):
    with pytest.raises(InvalidParameter, match="userns-remap"):
        userns.parse_option(value)


def test_read_ranges_and_free_start(tmp_path):
    p = tmp_path / "subuid"
    p.write_text("alice:100000:65536\nbroken line\nbob:x:1\nalice:300000:10\ncarol:165536:65536\n")
    assert userns.read_ranges(str(p), {"alice"}) == [(100000, 65536), (300000, 10)]
    assert userns.read_ranges(str(p), {"nobody"}) == []
    assert userns.read_ranges(str(tmp_path / "missing"), {"alice"}) == []
    assert userns.free_start(str(p)) == 300010
    assert userns.free_start(str(tmp_path / "missing")) == userns.RANGE_START


def test_add_range_appends_once(tmp_path):
    p = tmp_path / "subuid"
    p.write_text("alice:100000:65536")  # no final newline: the new line must not join it
    assert userns.add_range(str(p), "hostbridge-remap") == (165536, 65536)
    assert userns.add_range(str(p), "hostbridge-remap") == (165536, 65536)
    assert p.read_text() == "alice:100000:65536\nhostbridge-remap:165536:65536\n"


def test_remap_maps_ids_both_ways():
    r = userns.Remap("u", "g", [[0, 100000, 1000], [1000, 500000, 64536]], [[0, 200000, 65536]])
    assert (r.root_uid, r.root_gid, r.dir_name) == (100000, 200000, "100000.200000")
    assert r.host_uid(0) == 100000 and r.host_uid(999) == 100999 and r.host_uid(1000) == 500000
    assert r.container_uid(500001) == 1001 and r.container_uid(0) == 65534
    assert r.host_gid(5) == 200005 and r.container_gid(200005) == 5
    assert r.runtime_spec() == {"uid_map": r.uid_map, "gid_map": r.gid_map}


def test_load_needs_a_range(tmp_path):
    empty = tmp_path / "subuid"
    empty.write_text("")
    with pytest.raises(InvalidParameter, match="has no range for root"):
        userns.load("root", str(empty), str(empty))
    with pytest.raises(InvalidParameter, match="no such user"):
        userns.load("no-such-user-hb", str(empty), str(empty))


def test_load_of_a_named_user(tmp_path):
    sub = tmp_path / "subuid"
    sub.write_text("root:100000:65536\n")
    r = userns.load("root", str(sub), str(sub))
    assert (r.user, r.uid_map, r.gid_map) == ("root", [[0, 100000, 65536]], [[0, 100000, 65536]])


def test_tar_writer_records_container_ids():
    r = userns.Remap("u", "u", [[0, 100000, 65536]], [[0, 100000, 65536]])
    buf = io.BytesIO()
    with userns.tar_writer(buf, r) as t:
        for name, uid in (("a", 100000), ("b", 101000), ("c", 0)):
            ti = tarfile.TarInfo(name)
            ti.uid = ti.gid = uid
            ti.uname = "hostbridge-remap"
            t.addfile(ti, io.BytesIO(b""))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        assert [(m.name, m.uid, m.gid, m.uname) for m in t] == [("a", 0, 0, ""), ("b", 1000, 1000, ""),
                                                                 ("c", 65534, 65534, "")]


def test_append_system_user_takes_a_free_system_id(tmp_path):
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("root:x:0:0::/root:/bin/sh\nsvc:x:999:999::/:/bin/false\n")
    group.write_text("root:x:0:\nhostbridge:x:998:\n")
    userns._append_system_user("hostbridge-remap", str(passwd), str(group))
    assert passwd.read_text().splitlines()[-1] == "hostbridge-remap:x:997:997::/nonexistent:/bin/false"
    assert group.read_text().splitlines()[-1] == "hostbridge-remap:x:997:"
