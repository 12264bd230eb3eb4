"""Build context upload: safe unpacking, Dockerfile lookup, .dockerignore, COPY sources, hashes."""

import bz2
import gzip
import io
import lzma
import os
import tarfile

import pytest

from hostbridge.guest.builder import sources
from hostbridge.guest.builder.context import BuildContext, follow_in_scope
from hostbridge.guest.errors import InvalidParameter, NotFound, UnsafeArchive


def make_tar(entries, compress=None):
    """entries: name → bytes (file), None (dir), ("sym", target), ("hard", target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, value in entries.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = 1000
            if value is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif isinstance(value, tuple):
                ti.type = tarfile.SYMTYPE if value[0] == "sym" else tarfile.LNKTYPE
                ti.linkname = value[1]
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(value), 0o640
                t.addfile(ti, io.BytesIO(value))
    data = buf.getvalue()
    return {None: data, "gz": gzip.compress(data), "bz2": bz2.compress(data), "xz": lzma.compress(data)}[compress]


class Chunky(io.RawIOBase):
    """A body delivered in small pieces, as a chunked upload arrives."""

    def __init__(self, data, size=7):
        self.data, self.size = data, size

    def readable(self):
        return True

    def read(self, n=-1):
        out, self.data = self.data[:min(n if n > 0 else self.size, self.size)], self.data[min(n if n > 0 else self.size, self.size):]
        return out


def open_ctx(tmp_path, entries, dockerfile="", compress=None):
    return BuildContext.from_stream(Chunky(make_tar(entries, compress)), dockerfile, str(tmp_path))


@pytest.mark.parametrize("compress", [None, "gz", "bz2", "xz"])
def test_unpacks_plain_and_compressed(tmp_path, compress):
    ctx = open_ctx(tmp_path, {"Dockerfile": b"FROM a\n", "src": None, "src/f": b"hi"}, compress=compress)
    try:
        assert ctx.dockerfile == b"FROM a\n"
        with open(os.path.join(ctx.root, "src/f"), "rb") as f:
            assert f.read() == b"hi"
        assert os.stat(os.path.join(ctx.root, "src/f")).st_mode & 0o777 == 0o640
    finally:
        ctx.close()
    assert not os.path.exists(ctx.root)


@pytest.mark.parametrize("entries", [
    {"../evil": b"x"},
    {"a/../../evil": b"x"},
    {"link": ("sym", "/etc"), "link/passwd": b"x"},
    {"hard": ("hard", "../../etc/passwd")},
])
def test_refuses_escapes(tmp_path, entries):
    with pytest.raises(UnsafeArchive):
        open_ctx(tmp_path, dict(entries, Dockerfile=b"FROM a\n"))
    assert os.listdir(tmp_path) == []  # the temp dir is gone too


def test_absolute_member_names_stay_inside(tmp_path):
    with open_ctx(tmp_path, {"/Dockerfile": b"FROM a\n", "/abs/f": b"x"}) as ctx:
        assert os.path.isfile(os.path.join(ctx.root, "abs/f"))


def test_symlinks_are_kept_as_links(tmp_path):
    with open_ctx(tmp_path, {"Dockerfile": b"FROM a\n", "l": ("sym", "/etc/passwd")}) as ctx:
        assert os.readlink(os.path.join(ctx.root, "l")) == "/etc/passwd"


def test_named_dockerfile_and_errors(tmp_path):
    with open_ctx(tmp_path, {"sub": None, "sub/My.df": b"FROM b\n"}, dockerfile="sub/My.df") as ctx:
        assert ctx.dockerfile == b"FROM b\n"
    with pytest.raises(NotFound, match="Cannot locate specified Dockerfile: Dockerfile"):
        open_ctx(tmp_path, {"x": b""})
    with pytest.raises(InvalidParameter, match=r"the Dockerfile \(Dockerfile\) cannot be empty"):
        open_ctx(tmp_path, {"Dockerfile": b"  \n"})


def test_dockerfile_name_cannot_leave_the_context(tmp_path):
    with pytest.raises(NotFound):
        open_ctx(tmp_path, {"Dockerfile": b"FROM a\n"}, dockerfile="../../etc/passwd")


def test_lowercase_dockerfile_fallback(tmp_path):
    with open_ctx(tmp_path, {"dockerfile": b"FROM c\n"}) as ctx:
        assert ctx.dockerfile == b"FROM c\n"


def test_stdin_dockerfile_as_the_cli_sends_it(tmp_path):
    # `docker build -f - .`: the CLI adds the Dockerfile under a random name and lists it in
    # .dockerignore, so it is read but not left for COPY
    name = ".dockerfile.0123456789abcdef0123"
    entries = {name: b"FROM d\n", ".dockerignore": ("\n" + name + "\n.dockerignore\n").encode(), "f": b"x"}
    with open_ctx(tmp_path, entries, dockerfile=name) as ctx:
        assert ctx.dockerfile == b"FROM d\n"
        assert sorted(os.listdir(ctx.root)) == ["f"]


def test_a_plain_dockerfile_body(tmp_path):
    ctx = BuildContext.from_stream(io.BytesIO(b"FROM e\nRUN x\n" * 50), "", str(tmp_path))
    with ctx:
        assert ctx.dockerfile.startswith(b"FROM e\n")


def test_dockerignore_applied_with_exceptions(tmp_path):
    entries = {"Dockerfile": b"FROM a\n", ".dockerignore": b"*.log\n!keep.log\ndocs\n!docs/README.md\n**/tmp\n",
               "a.log": b"", "keep.log": b"", "docs": None, "docs/README.md": b"", "docs/x.md": b"",
               "src": None, "src/tmp": None, "src/tmp/junk": b"", "src/main.c": b""}
    with open_ctx(tmp_path, entries) as ctx:
        found = sorted(os.path.relpath(os.path.join(d, f), ctx.root)
                       for d, _, fs in os.walk(ctx.root) for f in fs)
        assert found == [".dockerignore", "Dockerfile", "docs/README.md", "keep.log", "src/main.c"]


def test_dockerignore_can_drop_dockerfile_after_reading_it(tmp_path):
    entries = {"Dockerfile": b"FROM a\n", ".dockerignore": b"Dockerfile\n.dockerignore\n", "f": b""}
    with open_ctx(tmp_path, entries) as ctx:
        assert ctx.dockerfile == b"FROM a\n"
        assert os.listdir(ctx.root) == ["f"]


# -- COPY sources ---------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "ctx"
    for rel, data in {"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/x.txt": "x", "dir/sub/y.txt": "y",
                      "[lit].txt": "l"}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    os.symlink("/a.txt", root / "abs-link")
    os.symlink("../../../../etc/passwd", root / "up-link")
    return str(root)


def rels(found):
    return [(s.rel, s.is_dir) for s in found]


def test_resolve_plain_paths(tree):
    assert rels(sources.resolve(tree, "a.txt")) == [("a.txt", False)]
    assert rels(sources.resolve(tree, "/dir/")) == [("dir", True)]
    assert rels(sources.resolve(tree, "./dir/../a.txt")) == [("a.txt", False)]
    assert rels(sources.resolve(tree, ".")) == [("", True)]


def test_resolve_refuses_paths_outside(tree):
    # dockerd 20.10: COPY failed: forbidden path outside the build context: ../x ()
    with pytest.raises(InvalidParameter, match=r"forbidden path outside the build context: \.\./x \(\)"):
        sources.resolve(tree, "../x")
    with pytest.raises(InvalidParameter, match="forbidden path"):
        sources.resolve(tree, "dir/../../x")


def test_symlinks_resolve_inside_the_root(tree):
    [s] = sources.resolve(tree, "abs-link")
    assert s.path == os.path.join(tree, "a.txt")
    with pytest.raises(NotFound):  # ../../etc/passwd clamps to <root>/etc/passwd: absent
        sources.resolve(tree, "up-link")
    assert follow_in_scope(tree, "up-link") == os.path.join(tree, "etc/passwd")


def test_missing_source_message(tree):
    with pytest.raises(NotFound) as e:
        sources.resolve(tree, "nothere")
    assert str(e.value) == ("file not found in build context or excluded by .dockerignore: "
                            "stat nothere: file does not exist")


def test_globs(tree):
    assert rels(sources.resolve(tree, "*.txt")) == [("[lit].txt", False), ("a.txt", False), ("b.txt", False)]
    assert rels(sources.resolve(tree, "?.md")) == [("c.md", False)]
    assert rels(sources.resolve(tree, "[ab].txt")) == [("a.txt", False), ("b.txt", False)]
    assert rels(sources.resolve(tree, "[^ab].md")) == [("c.md", False)]
    assert rels(sources.resolve(tree, "dir/*")) == [("dir/sub", True), ("dir/x.txt", False)]
    assert rels(sources.resolve(tree, "*/x.txt")) == [("dir/x.txt", False)]
    assert rels(sources.resolve(tree, "\\[lit]*")) == [("[lit].txt", False)]
    with pytest.raises(InvalidParameter, match="no source files were specified"):
        sources.resolve(tree, "no*here")


def test_checksum_content_not_mtime(tree):
    def h(rel):
        return sources.checksum(sources.resolve(tree, rel))
    first = h("a.txt")
    assert first.startswith("file:") and len(first) == 5 + 64
    os.utime(os.path.join(tree, "a.txt"), (1, 1))
    assert h("a.txt") == first
    os.chmod(os.path.join(tree, "a.txt"), 0o600)
    assert h("a.txt") != first
    d = h("dir")
    assert d.startswith("dir:")
    with open(os.path.join(tree, "dir/sub/y.txt"), "w") as f:
        f.write("changed")
    assert h("dir") != d
    multi = sources.checksum(sources.resolve(tree, "a.txt") + sources.resolve(tree, "b.txt"))
    assert multi.startswith("multi:")
    assert sources.checksum([], [("EOF", "hi")]) != sources.checksum([], [("EOF", "ho")])


def test_unterminated_tar_as_the_cli_sends_for_stdin_dockerfile(tmp_path):
    # `docker build -f - .` (CLI 28): the added Dockerfile's data ends the body: no padding to
    # 512 bytes, no end-of-archive blocks (recorded from a real upload: 5141 bytes)
    full = make_tar({"f": b"x", ".dockerfile.0123456789abcdef0123": b"FROM busybox\nENV A=1\n"})
    header_and_data = 512 + 512 + 512 + 21
    with BuildContext.from_stream(Chunky(full[:header_and_data]), ".dockerfile.0123456789abcdef0123",
                                  str(tmp_path)) as ctx:
        assert ctx.dockerfile == b"FROM busybox\nENV A=1\n"
        assert os.path.isfile(os.path.join(ctx.root, "f"))
