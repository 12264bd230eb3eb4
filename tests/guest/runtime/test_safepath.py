"""runtime/safepath: the walk inside a root by descriptors, openat2's and ours alike, and
recursive read-only mounts (mount_setattr, and the per-submount fallback)."""

import os
import subprocess
import sys

import pytest

from hostbridge.guest.runtime import safepath

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def tree(tmp_path):
    """A root with absolute, relative and climbing links, a loop, and a link out of it."""
    r = tmp_path / "root"
    (r / "a" / "b").mkdir(parents=True)
    (r / "a" / "b" / "f").write_text("inside\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("outside\n")
    os.symlink("/a", r / "abs")
    os.symlink("../../../../..", r / "a" / "up")
    os.symlink("b", r / "a" / "rel")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.symlink(str(tmp_path / "outside"), r / "out")
    os.symlink("/a/b/f", r / "filelink")
    return r


def _both(root, path):
    """(inode or errno) by openat2 (when the kernel has it) and by our walk."""
    out = []
    for force_walk in (False, True):
        if force_walk:
            safepath._openat2_missing.append("test")
        try:
            fd = safepath.open_in_root(str(root), path)
            out.append(os.fstat(fd).st_ino)
            os.close(fd)
        except OSError as e:
            out.append(e.errno)
        finally:
            if force_walk:
                safepath._openat2_missing.remove("test")
    return out


@pytest.mark.parametrize("path,expect", [
    ("/abs/b/f", "a/b/f"), ("a/up/abs/rel/f", "a/b/f"), ("/../../a/b", "a/b"), ("a/rel/../b/f", "a/b/f"),
    ("/out/f", None), ("filelink", "a/b/f"), ("loop1", None), ("a/b/f/x", None),
])
def test_openat2_and_the_walk_agree_and_stay_inside(tree, path, expect):
    by_kernel, by_walk = _both(tree, path)
    assert by_kernel == by_walk
    if expect is not None:
        assert by_walk == os.stat(tree / expect).st_ino
    else:
        assert by_walk not in (os.stat(tree.parent / "outside" / "f").st_ino,
                               os.stat(tree.parent / "outside").st_ino)


def test_resolve_names_the_container_path(tree):
    assert safepath.resolve(str(tree), "/abs/rel/f") == "/a/b/f"
    assert safepath.resolve(str(tree), "/out/f") == str(tree.parent / "outside" / "f")  # as a path inside
    assert safepath.resolve(str(tree), "/abs/missing/../x") == "/a/x"


def test_create_makes_missing_parts_inside_never_through_a_link(tree):
    fd = safepath.open_in_root(str(tree), "/out/new/dir", create="dir")
    os.close(fd)
    assert (tree / str(tree.parent / "outside").lstrip("/") / "new" / "dir").is_dir()  # inside the root
    assert not (tree.parent / "outside" / "new").exists()
    fd = safepath.open_in_root(str(tree), "/abs/b/newfile", create="file")
    os.close(fd)
    assert (tree / "a" / "b" / "newfile").is_file()


_RO_SNIPPET = """
import os, subprocess, sys
from hostbridge.guest.runtime import safepath
top = sys.argv[1]
if sys.argv[2] == "fallback":
    def refuse(fd, attr):
        raise OSError(38, "ENOSYS (the test: a kernel before 5.12)")
    safepath._mount_setattr = refuse
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "--rbind", top, top], check=True)
fd = safepath.open_in_root("/", top)
safepath.make_readonly(fd, recursive=True)
for p in (top + "/new", top + "/sub/new"):
    try:
        open(p, "w").close()
        print("writable", p)
    except OSError as e:
        print("refused", e.errno)
"""


@pytest.mark.root
@pytest.mark.parametrize("how", ["mount_setattr", "fallback"])
def test_make_readonly_reaches_submounts(tmp_path, how):
    if os.geteuid() != 0:
        pytest.skip("needs root (mount namespaces)")
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        "mount -t tmpfs t %s && exec %s -c '%s' %s %s"
                        % (top / "sub", sys.executable, _RO_SNIPPET.replace("'", "'\\''"), top, how)],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["refused", "30", "refused", "30"], r.stdout  # EROFS, both levels
