"""A build step's upper dir adopted as its layer (rename, tar written in the same pass) gives the
very layer the tar → extract path gives: same diff id, size, tar bytes and diff dir."""

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

from hostbridge.guest.images import build as image_build
from hostbridge.guest.images.store import ImageStore

pytestmark = pytest.mark.root


def tree(root):
    """Everything about a directory tree a layer carries: {path: (kind, mode, uid, gid, data, xattrs)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    data = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode):
                data = "chr %d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                data = int(st.st_mtime) if stat.S_ISDIR(st.st_mode) else None
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                for key in os.listxattr(full):
                    if key.startswith("user.") or key == "trusted.overlay.opaque":
                        xattrs[key] = os.getxattr(full, key)
            # a whiteout's mode means nothing (overlay makes them 0000, extraction 0600)
            mode = None if data == "chr 0:0" else stat.S_IMODE(st.st_mode)
            out[os.path.relpath(full, root)] = (stat.S_IFMT(st.st_mode), mode, st.st_uid,
                                                st.st_gid, data, xattrs)
    return out


@pytest.fixture
def upper(tmp_path):
    """A real overlay upper dir after a step's changes: files, a symlink, a deleted lower file
    (whiteout), a replaced lower dir (opaque), an xattr, a socket, a hard link."""
    lower, up, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower / "etc", lower / "gone-dir", up, work, merged):
        os.makedirs(d)
    (lower / "etc" / "old").write_text("old\n")
    (lower / "etc" / "kept").write_text("kept\n")
    (lower / "gone-dir" / "x").write_text("x\n")
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
                        % (lower, up, work), str(merged)], capture_output=True, text=True)
    assert r.returncode == 0, "overlay mounts are part of the root tier: %s" % r.stderr.strip()
    try:
        os.unlink(merged / "etc" / "old")
        shutil.rmtree(merged / "gone-dir")
        os.makedirs(merged / "gone-dir")
        (merged / "gone-dir" / "new").write_text("new\n")
        os.makedirs(merged / "app" / "sub")
        (merged / "app" / "bin").write_bytes(b"\x7fELF" + os.urandom(3000))
        os.chown(merged / "app" / "bin", 1000, 2000)
        os.chmod(merged / "app" / "bin", 0o4751)  # after chown, which clears setuid
        os.link(merged / "app" / "bin", merged / "app" / "sub" / "bin-link")
        os.symlink("../etc/kept", merged / "app" / "kept-link")
        os.setxattr(merged / "app" / "sub", "user.note", b"hello")
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(merged / "app" / "live.sock"))
        s.close()
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    return str(up)


def _stores(tmp_path):
    a, b = ImageStore(str(tmp_path / "store-a")), ImageStore(str(tmp_path / "store-b"))
    return a, b


def test_adopted_layer_equals_the_extracted_one(tmp_path, upper):
    copy = str(tmp_path / "upper-copy")
    subprocess.run(["cp", "-a", upper, copy], check=True)
    adopting, extracting = _stores(tmp_path)
    adopted = image_build.layer_from_dir(adopting, upper, adopt=True)
    extracted = image_build.layer_from_dir(extracting, copy)
    assert adopted == extracted
    assert not os.path.exists(upper)  # moved, not copied
    chain = adopted["chain_id"]
    with open(adopting.layers.tar_path(chain), "rb") as f1, open(extracting.layers.tar_path(chain), "rb") as f2:
        assert f1.read() == f2.read()
    got, want = tree(adopting.layers.diff_dir(chain)), tree(extracting.layers.diff_dir(chain))
    assert "app/live.sock" not in got  # the tar leaves sockets out, so the diff dir does too
    assert got == want
    assert got["etc/old"][0] == stat.S_IFCHR and got["gone-dir"][5] == {"trusted.overlay.opaque": b"y"}
    assert got["app/bin"][1:4] == (0o4751, 1000, 2000)
    assert os.stat(os.path.join(adopting.layers.diff_dir(chain), "app/sub/bin-link")).st_nlink == 2
    assert adopting.layers.meta(chain)["size"] == 3004 + len("new\n") + len("../etc/kept")  # files + symlink targets


def test_adopting_across_filesystems_extracts_the_tar(tmp_path, upper):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("host kernel: no /dev/shm tmpfs here")
    elsewhere = tempfile.mkdtemp(prefix="hb-adopt-", dir="/dev/shm")
    try:
        moved = os.path.join(elsewhere, "upper")
        subprocess.run(["cp", "-a", upper, moved], check=True)
        store, reference = _stores(tmp_path)
        assert os.stat(moved).st_dev != os.stat(store.layers.tmp).st_dev
        meta = image_build.layer_from_dir(store, moved, adopt=True)
        assert meta == image_build.layer_from_dir(reference, upper)
        assert tree(store.layers.diff_dir(meta["chain_id"])) == tree(reference.layers.diff_dir(meta["chain_id"]))
        assert os.listdir(store.layers.tmp) == []
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
