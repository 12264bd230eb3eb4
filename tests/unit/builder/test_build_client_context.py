"""The host CLI's build context: what is sent, as the docker CLI sends it (no engine needed)."""

import io
import os
import tarfile

import pytest

from hostbridge.client.buildcontext import ContextError, resolve_dockerfile, tar_context


def write_tree(root, files):
    for name, data in files.items():
        path = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(data)
    return str(root)


def members(chunks):
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        return {m.name: (m, t.extractfile(m).read() if m.isreg() else None) for m in t.getmembers()}


def test_dockerignore_is_applied_but_dockerfile_and_dockerignore_are_sent(tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n", ".dockerignore": "Dockerfile\n.dockerignore\n*.log\n"
                                "secret/\n!secret/public\n**/tmp\n", "a.log": "x", "app/main.py": "m",
                                "app/tmp/x": "t", "secret/key": "k", "secret/public": "p"})
    chunks, name = tar_context(ctx, "Dockerfile")
    got = members(chunks)
    assert name == "Dockerfile"
    assert sorted(got) == [".dockerignore", "Dockerfile", "app", "app/main.py", "secret/public"]
    m, data = got["app/main.py"]
    assert data == b"m" and (m.uid, m.gid, m.uname) == (0, 0, "")


def test_stdin_dockerfile_gets_a_random_name_listed_in_dockerignore(tmp_path):
    ctx = write_tree(tmp_path, {".dockerignore": "*.tmp", "f.txt": "f", "x.tmp": "x"})
    chunks, name = tar_context(ctx, None, b"FROM busybox\n")
    got = members(chunks)
    assert name.startswith(".dockerfile.") and got[name][1] == b"FROM busybox\n"
    assert got[".dockerignore"][1] == b"*.tmp\n%s\n" % name.encode()
    assert "x.tmp" not in got and "f.txt" in got


def test_hard_links_and_symlinks(tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n", "a": "data"})
    os.link(os.path.join(ctx, "a"), os.path.join(ctx, "b"))
    os.symlink("a", os.path.join(ctx, "s"))
    got = members(tar_context(ctx, "Dockerfile")[0])
    assert got["b"][0].islnk() and got["b"][0].linkname == "a"
    assert got["s"][0].issym() and got["s"][0].linkname == "a"


def test_big_files_stream_in_bounded_chunks(tmp_path):
    ctx = write_tree(tmp_path, {"Dockerfile": "FROM busybox\n"})
    with open(os.path.join(ctx, "big"), "wb") as f:
        f.write(os.urandom(1 << 20))
    chunks = list(tar_context(ctx, "Dockerfile")[0])
    assert len(chunks) > 4 and max(len(c) for c in chunks) < 200 * 1024
    assert members(chunks)["big"][0].size == 1 << 20


def test_resolve_dockerfile(tmp_path, monkeypatch):
    ctx = write_tree(tmp_path / "ctx", {"Dockerfile": "x", "sub/Other": "y"})
    out = write_tree(tmp_path / "out", {"Elsewhere": "z"})
    monkeypatch.chdir(str(tmp_path))
    assert resolve_dockerfile(ctx) == ("Dockerfile", None)
    assert resolve_dockerfile(ctx, "ctx/sub/Other") == ("sub/Other", None)
    assert resolve_dockerfile(ctx, "out/Elsewhere") == (None, os.path.join(out, "Elsewhere"))
    assert resolve_dockerfile(ctx, "-") == (None, "-")
    with pytest.raises(ContextError, match="Cannot locate specified Dockerfile: nope"):
        resolve_dockerfile(ctx, "nope")
    with pytest.raises(ContextError, match="unable to prepare context"):
        tar_context(str(tmp_path / "missing"))
