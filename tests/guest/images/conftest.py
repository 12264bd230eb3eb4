"""Fixtures for the image store tests: a store on a temp root, tars built member by member."""

import io
import os
import tarfile

import pytest

from hostbridge.guest.images.store import ImageStore


@pytest.fixture
def store(tmp_path):
    """An ImageStore on a fresh temp root (overlay when it mounts here, else vfs)."""
    return ImageStore(str(tmp_path / "root"))


def _member(tar, name, kind="file", data=b"", link="", mode=None, uid=0, gid=0, mtime=1000000,
            pax=None, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    if pax:
        ti.pax_headers = dict(pax)
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    ti.type = types[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if kind == "file":
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        tar.addfile(ti)


def build_tar(members) -> bytes:
    """A tar from [(name, kind, kwargs…)] tuples: ("a/b", "file", {"data": b"x"})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            name, kind = m[0], m[1]
            kw = m[2] if len(m) > 2 else {}
            _member(tar, name, kind, **kw)
    return buf.getvalue()


@pytest.fixture
def make_tar():
    """``make_tar([("etc/x", "file", {"data": b"hi"}), ("bin", "dir")])`` → tar bytes."""
    return build_tar


def store_state(store) -> dict:
    """Everything a failed operation must leave as it was: layer dirs, configs, tags, temp files."""
    root = store.root
    return {"layers": sorted(os.listdir(os.path.join(root, "layers"))),
            "imagedb": sorted(os.listdir(os.path.join(root, "imagedb"))),
            "repos": dict(store.repos), "images": sorted(store.images),
            "tmp": sorted(os.listdir(os.path.join(root, "tmp")))}


@pytest.fixture
def state_of():
    return store_state
