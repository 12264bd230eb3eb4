"""A Windows host's bind sources (``-v C:\\Users\\x\\p:/p`` as the stock docker CLI sends it)
translated through the share map (guest/volumes/hostpaths.py)."""

import json

import pytest

from hostbridge.guest.errors import InvalidParameter
from hostbridge.guest.volumes.hostpaths import bind_parts, load_map, split_bind, translate
from hostbridge.guest.volumes.mounts import parse_bind

SHARES = {"C:\\Users": "/c/Users"}


@pytest.mark.parametrize("spec,parts", [
    ("C:\\Users\\x\\proj:/x", ["C:\\Users\\x\\proj", "/x"]),
    ("c:/Users/x/proj:/x:ro", ["c:/Users/x/proj", "/x", "ro"]),
    ("/home/a:/a:rw", ["/home/a", "/a", "rw"]),
    ("vol:/data", ["vol", "/data"]),
    ("/ctr", ["/ctr"]),
])
def test_split_keeps_the_drive_colon(spec, parts):
    assert split_bind(spec) == parts


@pytest.mark.parametrize("source,guest", [
    ("C:\\Users\\x\\proj", "/c/Users/x/proj"),
    ("c:\\users\\x\\proj", "/c/Users/x/proj"),  # drive and folders compare without case, as on Windows
    ("C:/Users/x/proj", "/c/Users/x/proj"),
    ("C:\\Users\\x/mixed\\seps", "/c/Users/x/mixed/seps"),
    ("C:\\Users", "/c/Users"),
    ("C:\\Users\\", "/c/Users"),
    ("C:\\Users\\x\\..\\y", "/c/Users/y"),
])
def test_windows_sources_inside_a_share(source, guest):
    assert translate(source, SHARES) == guest


@pytest.mark.parametrize("source", ["C:\\Windows\\System32", "D:\\Users\\x", "C:\\Users\\..\\Windows", "C:\\",
                                    "C:\\UsersX\\y"])
def test_windows_sources_outside_every_share_are_a_400_naming_the_shares(source):
    with pytest.raises(InvalidParameter) as e:
        translate(source, SHARES)
    assert "not in a folder shared with the VM (shared: C:\\Users at /c/Users)" in str(e.value)


def test_without_a_map_nothing_is_translated_and_a_one_letter_volume_stays_a_volume():
    # An engine serving no Windows host reads c:/data as docker's Linux parser does: volume c.
    assert translate("C:\\Users\\x", {}) == "C:\\Users\\x"
    assert split_bind("c:/data", windows=False) == ["c", "/data"]
    b = parse_bind("v:/c:nocopy,rw")
    assert (b["src"], b["dst"], b["nocopy"]) == ("v", "/c", True)
    assert translate("/home/ana/p", SHARES) == "/home/ana/p"
    assert translate("myvolume", SHARES) == "myvolume"


def test_checks_without_the_map_take_the_reading_with_an_absolute_destination():
    assert bind_parts("C:\\Users\\x:/x:ro") == ["C:\\Users\\x", "/x", "ro"]
    assert bind_parts("v:/c:nocopy,rw") == ["v", "/c", "nocopy,rw"]
    assert bind_parts("c:/data") == ["c", "/data"]


def test_the_deepest_share_wins():
    shares = {"C:\\Users": "/c/Users", "C:\\Users\\ana\\big": "/mnt/big"}
    assert translate("C:\\Users\\ana\\big\\x", shares) == "/mnt/big/x"
    assert translate("C:\\Users\\ana\\other", shares) == "/c/Users/ana/other"


def test_parse_bind_translates_and_keeps_options():
    b = parse_bind("C:\\Users\\x\\proj:/x:ro", SHARES)
    assert (b["src"], b["dst"], b["rw"], b["mode"]) == ("/c/Users/x/proj", "/x", False, "ro")
    with pytest.raises(InvalidParameter):
        parse_bind("E:\\data:/d", SHARES)


def test_load_map_reads_the_hosts_file_and_ignores_junk(tmp_path):
    assert load_map(str(tmp_path)) == {}
    (tmp_path / "host-paths.json").write_text(json.dumps({"C:\\Users": "/c/Users", "bad": 3, "D:\\x": "rel"}))
    assert load_map(str(tmp_path)) == {"C:\\Users": "/c/Users"}
    (tmp_path / "host-paths.json").write_text("[1]")
    assert load_map(str(tmp_path)) == {}
