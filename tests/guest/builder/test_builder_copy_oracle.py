"""COPY destination rules, modes and owners compared with dockerd's result for the same build.

data/copy-rules.dockerd-20.10.txt is `stat -c "%n %a %u:%g %F"` of every path under /t in the
image dockerd 20.10 built (DOCKER_BUILDKIT=0) from data/copy-rules.Dockerfile and the context
made by ``make_context`` below.
"""

import io
import os
import stat
import tarfile

import pytest

from hostbridge.guest.builder.build import Builder, BuildOptions
from hostbridge.guest.builder.context import BuildContext

pytestmark = pytest.mark.root
DATA = os.path.join(os.path.dirname(__file__), "data")
KINDS = {stat.S_IFDIR: "directory", stat.S_IFREG: "regular file", stat.S_IFLNK: "symbolic link"}


def make_context(root):
    for rel, text, mode in (("f1", "1\n", 0o644), ("f2", "2\n", 0o600), ("d/x", "x\n", 0o644),
                            ("d/s/y", "y\n", 0o644), ("e/z", "z\n", 0o644)):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
    os.chmod(os.path.join(root, "d/s"), 0o700)
    os.symlink("x", os.path.join(root, "d/lnk"))
    with open(os.path.join(DATA, "copy-rules.Dockerfile")) as src, open(os.path.join(root, "Dockerfile"), "w") as dst:
        dst.write(src.read())


def test_copy_rules_match_dockerd(backend, tmp_path):
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir()
    make_context(str(ctx_dir))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.add(str(ctx_dir), arcname=".")
    with BuildContext.from_stream(io.BytesIO(buf.getvalue()), "", str(tmp_path)) as ctx:
        image_id = Builder(backend, BuildOptions(), lambda m: None).build(ctx)
    root = os.path.join(backend.image_dir(image_id), "rootfs")
    paths = [os.path.join(root, "t")]
    for d, dirs, files in os.walk(paths[0]):
        paths += [os.path.join(d, n) for n in dirs + files]
    lines = []
    for p in sorted(paths):
        st = os.lstat(p)
        mode = 0o777 if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
        lines.append("%s %o %d:%d %s" % (p[len(root):], mode, st.st_uid, st.st_gid, KINDS[stat.S_IFMT(st.st_mode)]))
    with open(os.path.join(DATA, "copy-rules.dockerd-20.10.txt")) as f:
        assert lines == f.read().strip().splitlines()
