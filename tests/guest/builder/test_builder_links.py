"""COPY hard-links context files into the step's upper dir: the image is the one a copy makes."""

import os
import stat

import pytest

from tests.guest.builder.test_builder_store import engine_store, store_build  # noqa: F401

pytestmark = pytest.mark.root


def read_in_image(store, image_id, path):
    """A file's bytes as the image shows it (its layers flattened by the store, once per image)."""
    d = os.path.join(os.path.dirname(store.root), "flat-" + image_id[7:19])
    if not os.path.isdir(d):
        os.makedirs(d)
        store.materialize(image_id, d)
    with open(os.path.join(d, path.lstrip("/")), "rb") as f:
        return f.read()


def _top_diff(store, image_id):
    return store.layers.diff_dir(store.chains(image_id)[-1])


@pytest.fixture
def no_copying(monkeypatch):
    """Fail any file copy in the copier: every file must be linked."""
    from hostbridge.guest.builder import copier

    def refuse(*args, **kw):
        raise AssertionError("a context file was copied, not linked: %r" % (args,))

    monkeypatch.setattr(copier.shutil, "copyfile", refuse)


def test_copy_over_lower_files_into_lower_dirs_and_new_dirs(engine_store, store_build, no_copying):  # noqa: F811
    image_id, _ = store_build("FROM busybox\nCOPY passwd /etc/passwd\nCOPY conf /etc/new.conf\n"
                              "COPY conf /brand/new/dir/\n", {"passwd": "root:x:0:0::/root:/bin/sh\n", "conf": "c\n"})
    assert read_in_image(engine_store, image_id, "/etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
    assert read_in_image(engine_store, image_id, "/etc/new.conf") == b"c\n"
    assert read_in_image(engine_store, image_id, "/brand/new/dir/conf") == b"c\n"
    top = _top_diff(engine_store, image_id)
    st = os.lstat(os.path.join(top, "brand/new/dir/conf"))
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    assert st.st_mtime == 1000
    parent = engine_store.chains(image_id)[-3]  # the layer of COPY passwd: a file, not a whiteout
    assert stat.S_ISREG(os.lstat(os.path.join(engine_store.layers.diff_dir(parent), "etc/passwd")).st_mode)


def test_sources_with_the_same_name_the_last_wins(engine_store, store_build):  # noqa: F811
    # several sources are copied, never linked: a path written twice must not meet a link
    image_id, _ = store_build("FROM busybox\nCOPY a/ b/ /dest/\n", {"a/x": "from a\n", "b/x": "from b\n",
                                                                 "a/only-a": "a\n"})
    assert read_in_image(engine_store, image_id, "/dest/x") == b"from b\n"
    assert read_in_image(engine_store, image_id, "/dest/only-a") == b"a\n"


def test_a_shared_inode_is_never_changed(engine_store, store_build):  # noqa: F811
    first, _ = store_build("FROM busybox\nCOPY f /plain\nCOPY --chmod=0751 f /exec\nCOPY --chown=7:8 f /owned\n"
                           "COPY f /again\n", {"f": "f\n"}, tags=["linked"])
    modes = {}
    for i, name in enumerate(("plain", "exec", "owned", "again")):
        layer = engine_store.layers.diff_dir(engine_store.chains(first)[1 + i])
        st = os.lstat(os.path.join(layer, name))
        modes[name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    assert modes == {"plain": (0o644, 0, 0), "exec": (0o751, 0, 0), "owned": (0o644, 7, 8), "again": (0o644, 0, 0)}
    child, _ = store_build("FROM linked\nRUN echo changed >> /plain && chmod 600 /again\n")
    assert read_in_image(engine_store, child, "/plain") == b"f\nchanged\n"
    plain_layer = engine_store.layers.diff_dir(engine_store.chains(first)[1])
    with open(os.path.join(plain_layer, "plain"), "rb") as f:
        assert f.read() == b"f\n"  # a RUN changes a copy-up, never the layer's file
    again = os.lstat(os.path.join(engine_store.layers.diff_dir(engine_store.chains(first)[4]), "again"))
    assert stat.S_IMODE(again.st_mode) == 0o644
