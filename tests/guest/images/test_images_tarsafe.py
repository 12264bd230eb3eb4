"""Layer extraction: hostile tars refused without touching the host, metadata kept, whiteouts."""

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest

from hostbridge.guest.errors import InvalidParameter, UnsafeArchive
from hostbridge.guest.images import tarsafe
from hostbridge.guest.images.difftar import write_diff_tar

pytestmark = pytest.mark.root  # chown, mknod whiteouts and trusted.* xattrs need root


def extract(data, dest, **kw):
    os.makedirs(dest, exist_ok=True)
    return tarsafe.extract(io.BytesIO(data), str(dest), **kw)


@pytest.fixture
def outside(tmp_path):
    """A host directory no layer may write into; tests check it stays empty."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


def test_dotdot_refused_and_names_member(tmp_path, make_tar, outside):
    data = make_tar([("ok", "file"), ("../outside/x", "file", {"data": b"pwned"})])
    with pytest.raises(UnsafeArchive, match=r"\.\./outside/x"):
        extract(data, tmp_path / "dest")
    assert os.listdir(outside) == []


def test_nested_dotdot_refused(tmp_path, make_tar, outside):
    data = make_tar([("a/b/../../../outside/y", "file", {"data": b"pwned"})])
    with pytest.raises(UnsafeArchive):
        extract(data, tmp_path / "dest")
    assert os.listdir(outside) == []


def test_absolute_name_lands_inside(tmp_path, make_tar):
    name = "etc/hostbridge-tarsafe-test-%d" % os.getpid()
    data = make_tar([("/" + name, "file", {"data": b"inside"})])
    extract(data, tmp_path / "dest")
    assert (tmp_path / "dest" / name).read_bytes() == b"inside"
    assert not os.path.exists("/" + name)


def test_write_through_symlink_refused(tmp_path, make_tar, outside):
    data = make_tar([("evil", "symlink", {"link": str(outside)}),
                     ("evil/x", "file", {"data": b"pwned"})])
    with pytest.raises(UnsafeArchive, match="evil/x"):
        extract(data, tmp_path / "dest")
    assert not (outside / "x").exists()


def test_relative_symlink_escape_refused(tmp_path, make_tar, outside):
    data = make_tar([("sub/up", "symlink", {"link": "../../outside"})])
    with pytest.raises(UnsafeArchive, match="sub/up"):
        extract(data, tmp_path / "dest")
    assert os.listdir(outside) == []


def test_symlink_chain_refused(tmp_path, make_tar, outside):
    # a -> . is harmless alone; b -> a/../.. climbs out lexically; c/x would go through both.
    data = make_tar([("a", "symlink", {"link": "."}), ("b", "symlink", {"link": "a/../.."}),
                     ("c", "symlink", {"link": "b/outside"}), ("c/x", "file", {"data": b"p"})])
    with pytest.raises(UnsafeArchive, match="'b'"):
        extract(data, tmp_path / "dest")
    assert os.listdir(outside) == []
    data = make_tar([("a", "symlink", {"link": str(outside)}), ("b", "symlink", {"link": "a"}),
                     ("b/x", "file", {"data": b"p"})])
    with pytest.raises(UnsafeArchive, match="b/x"):
        extract(data, tmp_path / "dest2")
    assert os.listdir(outside) == []


def test_hardlink_outside_refused(tmp_path, make_tar):
    before = os.stat("/etc/passwd")
    for link in ("/etc/passwd", "../../../../etc/passwd"):
        data = make_tar([("pw", "hardlink", {"link": link}), ("pw2", "file", {"data": b"x"})])
        with pytest.raises(UnsafeArchive, match="pw"):
            extract(data, tmp_path / ("dest" + str(len(link))))
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mtime_ns, after.st_ino) == \
        (before.st_nlink, before.st_mtime_ns, before.st_ino)


def test_hardlink_through_symlinked_parent_refused(tmp_path, make_tar, outside):
    (outside / "secret").write_bytes(b"s")
    data = make_tar([("d", "symlink", {"link": str(outside)}),
                     ("h", "hardlink", {"link": "d/secret"})])
    with pytest.raises(UnsafeArchive):
        extract(data, tmp_path / "dest")
    assert os.stat(outside / "secret").st_nlink == 1


def test_metadata_preserved(tmp_path, make_tar):
    data = make_tar([
        ("d", "dir", {"mode": 0o750, "uid": 33, "gid": 33, "mtime": 1500000000}),
        ("d/f", "file", {"data": b"hello", "mode": 0o4755, "uid": 1000, "gid": 100,
                         "mtime": 1600000000, "pax": {"SCHILY.xattr.user.note": "hi"}}),
        ("d/h", "hardlink", {"link": "d/f"}),
        ("d/s", "symlink", {"link": "/bin/busybox", "uid": 7, "gid": 8}),
        ("d/p", "fifo", {"mode": 0o600}),
    ])
    info = extract(data, tmp_path / "dest")
    d = tmp_path / "dest" / "d"
    st = os.stat(d / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == \
        (0o4755, 1000, 100, 1600000000)
    assert os.getxattr(d / "f", "user.note") == b"hi"
    assert st.st_nlink == 2 and os.stat(d / "h").st_ino == st.st_ino
    assert os.readlink(d / "s") == "/bin/busybox"
    assert (os.lstat(d / "s").st_uid, os.lstat(d / "s").st_gid) == (7, 8)
    assert stat.S_ISFIFO(os.stat(d / "p").st_mode)
    dst = os.stat(d)
    assert (stat.S_IMODE(dst.st_mode), dst.st_uid, int(dst.st_mtime)) == (0o750, 33, 1500000000)
    assert info["diff_id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info["size"] == len(b"hello") + len("/bin/busybox")


def test_gzip_diff_id_is_of_uncompressed_stream(tmp_path, make_tar):
    data = make_tar([("a", "file", {"data": b"x" * 5000})])
    gz = gzip.compress(data)
    kept = io.BytesIO()
    os.makedirs(tmp_path / "dest")
    info = tarsafe.extract(io.BytesIO(gz), str(tmp_path / "dest"), keep_tar=kept)
    assert info["diff_id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info["digest"] == "sha256:" + hashlib.sha256(gz).hexdigest()
    assert kept.getvalue() == data


def test_zstd_refused_clearly(tmp_path):
    with pytest.raises(InvalidParameter, match="zstd"):
        extract(b"\x28\xb5\x2f\xfd" + b"\0" * 100, tmp_path / "dest")


@pytest.mark.parametrize("garbage", [b"not a tar at all" * 100, b"\x1f\x8b\x08garbage"])
def test_garbage_is_invalid(tmp_path, garbage):
    with pytest.raises(InvalidParameter):
        extract(garbage, tmp_path / "dest")


def test_truncated_is_invalid(tmp_path, make_tar):
    data = make_tar([("a", "file", {"data": os.urandom(20000)})])
    with pytest.raises(InvalidParameter, match="truncated"):
        extract(data[:10000], tmp_path / "dest")


def test_aufs_whiteouts_become_overlay(tmp_path, make_tar):
    data = make_tar([("etc", "dir"), ("etc/.wh.passwd", "file", {"uid": 5, "gid": 6}),
                     ("var", "dir"), ("var/.wh..wh..opq", "file"), ("var/new", "file"),
                     (".wh..wh.plnk", "dir")])
    extract(data, tmp_path / "dest")
    wh = os.lstat(tmp_path / "dest" / "etc" / "passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0 and (wh.st_uid, wh.st_gid) == (5, 6)
    assert not (tmp_path / "dest" / "etc" / ".wh.passwd").exists()
    assert os.getxattr(tmp_path / "dest" / "var", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(tmp_path / "dest")) == ["etc", "var"]


def test_apply_mode_deletes_what_whiteouts_name(tmp_path, make_tar):
    dest = tmp_path / "rootfs"
    extract(make_tar([("etc/passwd", "file"), ("etc/group", "file"), ("var/old", "file"),
                      ("var/keep", "dir")]), dest, whiteouts="apply")
    extract(make_tar([("etc/.wh.passwd", "file"), ("var", "dir"), ("var/.wh..wh..opq", "file"),
                      ("var/new", "file", {"data": b"n"})]), dest, whiteouts="apply")
    assert sorted(os.listdir(dest / "etc")) == ["group"]
    assert sorted(os.listdir(dest / "var")) == ["new"]


def test_diff_tar_converts_overlay_whiteouts_back(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "passwd", stat.S_IFCHR | 0o600, 0)
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq" / "f").write_bytes(b"data")
    os.link(upper / "opq" / "f", upper / "opq" / "g")
    os.symlink("/x", upper / "l")
    buf = io.BytesIO()
    write_diff_tar(str(upper), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        members = {m.name: m for m in t.getmembers()}
    assert list(members) == ["etc", "etc/.wh.passwd", "l", "opq", "opq/.wh..wh..opq", "opq/f", "opq/g"]
    assert members["etc/.wh.passwd"].isreg() and members["etc/.wh.passwd"].size == 0
    assert members["opq/g"].islnk() and members["opq/g"].linkname == "opq/f"
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    # and back again: the same overlay dir
    buf.seek(0)
    back = tmp_path / "back"
    extract(buf.getvalue(), back)
    assert stat.S_ISCHR(os.lstat(back / "etc" / "passwd").st_mode)
    assert os.getxattr(back / "opq", "trusted.overlay.opaque") == b"y"
    assert os.stat(back / "opq" / "g").st_ino == os.stat(back / "opq" / "f").st_ino


def test_hardlink_to_directory_is_invalid(tmp_path, make_tar):
    data = make_tar([("d", "dir"), ("h", "hardlink", {"link": "d"})])
    with pytest.raises(InvalidParameter, match="hard link to directory"):
        extract(data, tmp_path / "dest")


def test_later_member_replaces_earlier(tmp_path, make_tar):
    data = make_tar([("x", "dir"), ("x/y", "file"), ("x", "file", {"data": b"now a file"}),
                     ("s", "symlink", {"link": "/a"}), ("s", "dir")])
    extract(data, tmp_path / "dest")
    assert (tmp_path / "dest" / "x").read_bytes() == b"now a file"
    assert (tmp_path / "dest" / "s").is_dir() and not (tmp_path / "dest" / "s").is_symlink()
