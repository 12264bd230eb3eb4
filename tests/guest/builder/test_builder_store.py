"""The build driver on the engine's real image store (overlay) with RUN in real containers."""

import io
import os
import subprocess

import pytest

from hostbridge.guest.builder.build import Builder, BuildOptions
from hostbridge.guest.builder.context import BuildContext
from hostbridge.guest.builder.steps import BuildError
from hostbridge.guest.errors import NotFound
from hostbridge.guest.images.store import ImageStore
from tests.guest.builder.conftest import build_until, context_tar

pytestmark = pytest.mark.root


@pytest.fixture
def engine_store(tmp_path, busybox_rootfs_tar):
    store = ImageStore(str(tmp_path / "root"))
    # the root tier has overlayfs: the store's probe saying vfs is a failure, not a skip
    assert store.driver == "overlay", "the image store's overlay probe failed under %s" % tmp_path
    with open(busybox_rootfs_tar, "rb") as f:
        store.import_rootfs(f, "busybox:latest")
    return store


@pytest.fixture
def store_build(engine_store, tmp_path):
    from hostbridge.guest.builder.storebackend import StoreBackend
    backend = StoreBackend(engine_store, str(tmp_path / "root" / "builder"), run_timeout=60)

    def run(dockerfile, files=None, **options):
        msgs = []
        ctx = BuildContext.from_stream(io.BytesIO(context_tar(dockerfile, files)), "", str(tmp_path))
        try:
            image_id = Builder(backend, BuildOptions(**options), msgs.append).build(ctx)
        finally:
            ctx.close()
        return image_id, "".join(m.get("stream", "") for m in msgs)

    yield run
    assert os.listdir(backend.rootfs_dir) == [], "a build left a rootfs behind"
    mounts = open("/proc/self/mounts").read()
    assert backend.rootfs_dir not in mounts


def read_in_image(store, image_id, path):
    """A file's bytes as the image shows it (its layers merged, read with the store's own vfs path)."""
    d = os.path.join(os.path.dirname(store.root), "flat-" + image_id[7:19])
    os.makedirs(d)
    store.materialize(image_id, d)
    with open(os.path.join(d, path.lstrip("/")), "rb") as f:
        return f.read()


def test_seed_workflow_on_the_real_store(engine_store, store_build):
    base_id, out = store_build(
        "FROM busybox\nRUN mkdir -p /var/www && echo base > /var/www/index.html && echo built\n"
        "EXPOSE 80\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/var/www\"]\n", tags=["php_box"])
    assert "\nbuilt\n" in out and " ---> Running in " in out
    child_id, _ = store_build("FROM php_box\nADD myApp /var/www\n", {"myApp/index.html": "<h1>app</h1>"},
                              tags=["site"])
    assert read_in_image(engine_store, child_id, "/var/www/index.html") == b"<h1>app</h1>"
    inspect = engine_store.inspect(child_id)
    assert inspect["Config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    assert engine_store.resolve("site") == child_id
    history = [h["CreatedBy"] for h in engine_store.history(child_id)]
    assert history[0].startswith("/bin/sh -c #(nop) ADD dir:") and history[0].endswith(" in /var/www ")
    assert history[3] == "/bin/sh -c mkdir -p /var/www && echo base > /var/www/index.html && echo built"


def test_run_failure_and_cache_on_the_real_store(engine_store, store_build):
    with pytest.raises(BuildError) as e:
        store_build("FROM busybox\nRUN echo out; echo err >&2; exit 3\n", tags=["bad"])
    assert e.value.code == 3
    with pytest.raises(NotFound):
        engine_store.resolve("bad")
    df = "FROM busybox\nWORKDIR /w\nRUN echo one > f\nCOPY x /x\n"
    first, out1 = store_build(df, {"x": "1"})
    again, out2 = store_build(df, {"x": "1"})
    assert first == again and out2.count("Using cache") == 3
    changed, out3 = store_build(df, {"x": "2"})
    assert changed != first and out3.count("Using cache") == 2
    assert read_in_image(engine_store, changed, "/w/f") == b"one\n"


def test_stderr_is_red_and_user_applies(engine_store, store_build):
    image_id, out = store_build("FROM busybox\nUSER 1000\nRUN id -u; echo oops >&2\n")
    assert "1000\n" in out
    assert "\x1b[91moops\n\x1b[0m" in out


def test_empty_run_is_an_empty_layer(engine_store, store_build):
    image_id, _ = store_build("FROM busybox\nRUN true\n")
    assert engine_store.config(image_id)["history"][-1].get("empty_layer") is True
    assert len(engine_store.config(image_id)["rootfs"]["diff_ids"]) == 1


def test_no_container_process_left(engine_store, store_build):
    store_build("FROM busybox\nRUN echo quick\n")
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "echo quick" not in out


def test_client_gone_mid_run_kills_the_container(engine_store, tmp_path):
    from hostbridge.guest.builder.storebackend import StoreBackend
    backend = StoreBackend(engine_store, str(tmp_path / "root" / "builder"), run_timeout=60)
    ps = build_until(backend, "FROM busybox\nRUN echo tick; sleep 53.5; echo late\n", "tick", str(tmp_path))
    assert "sleep 53.5" not in ps
    assert os.listdir(backend.rootfs_dir) == []
    assert backend.rootfs_dir not in open("/proc/self/mounts").read()


def test_client_closing_during_a_silent_run_kills_the_container(engine_store, tmp_path):
    from hostbridge.guest.builder.storebackend import StoreBackend
    backend = StoreBackend(engine_store, str(tmp_path / "root" / "builder"), run_timeout=60)
    ps = build_until(backend, "FROM busybox\nRUN echo tick; sleep 54.5; echo late\n", "tick", str(tmp_path),
                     quietly=True)
    assert "sleep 54.5" not in ps
    assert os.listdir(backend.rootfs_dir) == []
    assert backend.rootfs_dir not in open("/proc/self/mounts").read()


def test_clean_stale_removes_what_a_dead_engine_left(engine_store, tmp_path):
    from hostbridge.guest.builder.storebackend import StoreBackend
    state = str(tmp_path / "root" / "builder")
    dead = StoreBackend(engine_store, state)
    image_id = engine_store.resolve("busybox")
    left = dead.create_rootfs(image_id)  # mounted, never released: the engine "died" here
    assert os.path.ismount(left.path)
    fresh = StoreBackend(engine_store, state)
    fresh.clean_stale()
    assert os.listdir(fresh.rootfs_dir) == []
    assert left.path not in open("/proc/self/mounts").read()
