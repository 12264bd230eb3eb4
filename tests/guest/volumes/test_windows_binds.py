"""Binds a Windows host's docker CLI sends as typed (``C:\\Users\\x\\p:/p``), against the real
engine through the docker SDK: translated through ROOT/host-paths.json, or refused with a 400."""

import json
import os

import pytest

pytestmark = pytest.mark.root

docker = pytest.importorskip("docker")


@pytest.fixture
def shared(engine, tmp_path):
    """The engine told that the host's C:\\Users is mounted at a temp dir (as /c/Users in a VM)."""
    users = tmp_path / "c-users"
    (users / "ana" / "proj").mkdir(parents=True)
    (users / "ana" / "proj" / "hello.txt").write_text("from windows\n")
    path = os.path.join(engine.root, "host-paths.json")
    with open(path, "w") as f:
        json.dump({"C:\\Users": str(users)}, f)
    client = docker.DockerClient(base_url=engine.url, version="1.44")
    try:
        yield client, users
    finally:
        client.close()
        os.unlink(path)


def test_a_windows_bind_reaches_the_shared_folder(shared):
    client, users = shared
    out = client.containers.run("busybox", ["cat", "/p/hello.txt"], remove=True,
                                volumes=["c:\\users\\ana\\proj:/p:ro"])
    assert out == b"from windows\n"
    c = client.containers.create("busybox", ["true"], volumes=["C:/Users/ana/proj:/p"])
    try:
        mount = c.attrs["Mounts"][0]
        assert (mount["Source"], mount["Destination"], mount["RW"]) == (str(users / "ana" / "proj"), "/p", True)
    finally:
        c.remove()


def test_a_windows_mount_source_is_translated_too(shared):
    client, users = shared
    m = docker.types.Mount("/p", "C:\\Users\\ana\\proj", type="bind", read_only=True)
    out = client.containers.run("busybox", ["cat", "/p/hello.txt"], remove=True, mounts=[m])
    assert out == b"from windows\n"


def test_a_windows_path_outside_the_shares_is_a_400_naming_them(shared):
    client, _ = shared
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], volumes=["C:\\Windows\\System32:/sys32"])
    assert e.value.status_code == 400
    assert "C:\\Windows\\System32 is not in a folder shared with the VM (shared: C:\\Users at " in str(e.value)
