"""Fixtures for the build driver: a directory image store with busybox, and a build helper."""

import io
import os
import tarfile

import pytest

from hostbridge.guest.builder.build import Builder, BuildOptions
from hostbridge.guest.builder.context import BuildContext
from tests.guest.builder.dirbackend import DirBackend
from tests.guest.builder.storeview import StoreTestBackend


@pytest.fixture(scope="session")
def _busybox_store(tmp_path_factory, busybox_rootfs_tar):
    root = str(tmp_path_factory.mktemp("dirstore"))
    backend = DirBackend(root)
    backend.import_rootfs_tar(busybox_rootfs_tar, "busybox:latest")
    return root


@pytest.fixture(params=[pytest.param("store", marks=pytest.mark.root), "dir"])
def backend(request, tmp_path, busybox_rootfs_tar):
    """A fresh backend holding busybox:latest, so tests do not share a cache: the engine's own
    ``StoreBackend`` on an overlay image store ("store"), and the directory backend ("dir",
    whole-tree snapshots as docker's vfs keeps them), each build driver test on both."""
    if request.param == "store":
        b = StoreTestBackend(str(tmp_path / "storeroot"), busybox_rootfs_tar)
        try:
            yield b
            assert b.leftovers() == [], "a build left a rootfs behind"
        finally:
            b.close()
        return
    import subprocess
    root = str(tmp_path / "store")
    subprocess.run(["cp", "-a", request.getfixturevalue("_busybox_store"), root], check=True)
    b = DirBackend(root)
    yield b
    assert b.leftovers() == [], "a build left a rootfs behind"


class Result:
    def __init__(self, image_id, messages):
        self.id, self.messages = image_id, messages
        self.stream = "".join(m.get("stream", "") for m in messages)


def context_tar(dockerfile: str, files=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        entries = dict(files or {})
        entries.setdefault("Dockerfile", dockerfile)
        for name, data in sorted(entries.items()):
            mode = 0o644
            if isinstance(data, tuple):
                data, mode = data
            if isinstance(data, str):
                data = data.encode()
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size, ti.mode, ti.mtime = len(data), mode, 1000
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def build(backend, tmp_path):
    """build(dockerfile, files={name: text|bytes|(data, mode)}, **BuildOptions) → Result; raises what it raises."""

    def run(dockerfile, files=None, messages=None, **options):
        msgs = [] if messages is None else messages
        ctx = BuildContext.from_stream(io.BytesIO(context_tar(dockerfile, files)), "", str(tmp_path))
        try:
            image_id = Builder(backend, BuildOptions(**options), msgs.append).build(ctx)
        finally:
            ctx.close()
        return Result(image_id, msgs)

    return run


def created_by(backend, image_id):
    """The image's history, newest first, as `docker history --no-trunc` shows CreatedBy."""
    return [h.get("created_by", "") for h in reversed(backend.image(image_id)["history"])]


def rootfs_file(backend, image_id, path):
    return os.path.join(backend.image_dir(image_id), "rootfs", path.lstrip("/"))


class ClientGone(Exception):
    """Raised by an emit callback to play a client that disconnects."""


def build_until(backend, dockerfile, marker, tmp_dir, quietly=False):
    """Build, with the client going away once ``marker`` shows in the stream; returns the
    ``ps`` listing taken afterwards.

    The client's leaving is seen either by the next write failing (``emit`` raises), or, with
    ``quietly``, only through ``cancelled()`` (a client that closed while nothing was written).

    Raises:
        AssertionError: the build did not stop.
    """
    import subprocess
    import time

    from hostbridge.guest.builder.steps import BuildCancelled
    gone = []

    def emit(msg):
        if marker in msg.get("stream", ""):
            gone.append(time.monotonic())
            if not quietly:
                raise ClientGone()

    ctx = BuildContext.from_stream(io.BytesIO(context_tar(dockerfile)), "", tmp_dir)
    try:
        Builder(backend, BuildOptions(), emit, cancelled=lambda: bool(gone)).build(ctx)
    except (ClientGone, BuildCancelled):
        assert time.monotonic() - gone[0] < 5, "the build took too long to stop"
    else:
        raise AssertionError("the build did not stop when its client went away")
    finally:
        ctx.close()
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
