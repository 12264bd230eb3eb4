"""Build contexts' files kept as hard links (builder/filecache.py through tarsafe.extract)."""

import io
import os
import stat
import tarfile

import pytest

from hostbridge.guest.builder.context import BuildContext
from hostbridge.guest.builder.filecache import FileCache
from tests.guest.builder.test_builder_store import engine_store, store_build  # noqa: F401

pytestmark = pytest.mark.root


def context_tar(files):
    """files: {name: (bytes, mode, mtime)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, (data, mode, mtime) in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, mtime
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def unpack(tmp_path, cache, files):
    return BuildContext.from_stream(io.BytesIO(context_tar(files)), "", str(tmp_path), cache)


def inode(ctx, name):
    st = os.lstat(os.path.join(ctx.root, name))
    return st.st_ino, stat.S_IMODE(st.st_mode), st.st_mtime, st.st_uid


def test_same_bytes_and_metadata_are_linked_anything_else_is_new(tmp_path):
    cache = FileCache(str(tmp_path / "files"))
    files = {"Dockerfile": (b"FROM busybox\n", 0o644, 1000), "same": (b"s\n", 0o644, 1000),
             "content": (b"c\n", 0o644, 1000), "mode": (b"m\n", 0o644, 1000), "mtime": (b"t\n", 0o644, 1000)}
    first = unpack(tmp_path, cache, files)
    second = unpack(tmp_path, cache, dict(files, content=(b"C\n", 0o644, 1000), mode=(b"m\n", 0o755, 1000),
                                          mtime=(b"t\n", 0o644, 2000)))
    try:
        assert inode(second, "same") == inode(first, "same")
        for name in ("content", "mode", "mtime"):
            assert inode(second, name)[0] != inode(first, name)[0], name
        assert inode(second, "mode")[1] == 0o755 and inode(second, "mtime")[2] == 2000
        with open(os.path.join(second.root, "content"), "rb") as f:
            assert f.read() == b"C\n"
        assert os.lstat(os.path.join(second.root, "same")).st_nlink == 3  # cache + two contexts
    finally:
        first.close()
        second.close()
    assert len(os.listdir(cache.root)) == 5  # the last build's files (the first's went when it ended)
    third = unpack(tmp_path, cache, {"Dockerfile": (b"FROM busybox\n", 0o644, 1000)})
    third.close()
    left = os.listdir(cache.root)  # only the one file that build used
    assert len(left) == 1
    with open(os.path.join(cache.root, left[0]), "rb") as f:
        assert f.read() == b"FROM busybox\n"


def test_big_files_and_files_with_xattrs_are_not_kept(tmp_path):
    cache = FileCache(str(tmp_path / "files"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, headers in (("Dockerfile", b"FROM busybox\n", {}), ("big", b"x" * (2 << 20), {}),
                                    ("attr", b"a", {"SCHILY.xattr.user.k": "v"})):
            ti = tarfile.TarInfo(name)
            ti.size, ti.pax_headers = len(data), headers
            t.addfile(ti, io.BytesIO(data))
    ctx = BuildContext.from_stream(io.BytesIO(buf.getvalue()), "", str(tmp_path), cache)
    try:
        assert os.lstat(os.path.join(ctx.root, "big")).st_nlink == 1
        assert os.lstat(os.path.join(ctx.root, "attr")).st_nlink == 1
        assert os.getxattr(os.path.join(ctx.root, "attr"), "user.k") == b"v"
    finally:
        ctx.close()


def test_kept_files_shared_with_layers_stay_unchanged(engine_store, tmp_path):  # noqa: F811
    from hostbridge.guest.builder.build import Builder, BuildOptions
    from hostbridge.guest.builder.storebackend import StoreBackend

    state = str(tmp_path / "root" / "builder")
    backend = StoreBackend(engine_store, state, run_timeout=60)
    files = {"Dockerfile": (b"FROM busybox\nCOPY f /f\nRUN echo changed >> /f && chmod 600 /f && cat /f\n",
                            0o644, 1000), "f": (b"kept\n", 0o644, 1000)}
    for _ in range(2):  # the second build links the kept inodes
        out = []
        ctx = BuildContext.from_stream(io.BytesIO(context_tar(files)), "", state, backend.context_file_cache())
        try:
            image_id = Builder(backend, BuildOptions(no_cache=True), out.append).build(ctx)
        finally:
            ctx.close()
        assert "kept\nchanged\n" in "".join(m.get("stream", "") for m in out)
    entries = {}
    for name in os.listdir(backend.file_cache.root):
        path = os.path.join(backend.file_cache.root, name)
        with open(path, "rb") as f:
            entries[f.read()] = os.lstat(path)
    assert set(entries) == {files["Dockerfile"][0], b"kept\n"}
    st = entries[b"kept\n"]
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o644, 1000)
    assert st.st_nlink == 2  # the cache and the COPY layer (the second build made the same layer)
    copy_layer = engine_store.layers.diff_dir(engine_store.chains(image_id)[-2])
    assert os.lstat(os.path.join(copy_layer, "f")).st_ino == st.st_ino
