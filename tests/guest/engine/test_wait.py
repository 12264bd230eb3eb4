"""POST /containers/{id}/wait against a container that exits at once: the wait is on when its
headers are out, as docker run relies on (it starts the container as soon as it reads them)."""

import json
import os
import sys
import time

import pytest

from tests.support.engine import Engine, UnixHTTPConnection

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def stalled(tmp_path_factory, busybox_rootfs_tar):
    """A real engine whose wait handlers are held after their headers until ``go`` exists."""
    base = tmp_path_factory.mktemp("stalled")
    go = str(base / "go")
    e = Engine(base / "engine", prefix=[sys.executable, "-m", "tests.support.stalled_wait", go]).start()
    e.go = go
    try:
        e.import_tar(busybox_rootfs_tar, "busybox:latest")
        yield e
    finally:
        e.close()


def _state(engine, cid):
    status, body = engine.request("GET", "/containers/%s/json" % cid)
    return body["State"]["Status"] if status == 200 else "gone"


@pytest.mark.parametrize("condition, auto_remove", [("next-exit", False), ("removed", True),
                                                    ("not-running", False)])
def test_a_wait_whose_handler_resumes_after_the_exit_still_ends(stalled, condition, auto_remove):
    """docker run's order: wait (headers read), start; the container exits before the wait's
    handler runs again. The wait must end with the exit code (it hung: registered too late)."""
    if os.path.exists(stalled.go):
        os.unlink(stalled.go)
    status, body = stalled.request("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "exit 3"],
        "HostConfig": {"NetworkMode": "none", "AutoRemove": auto_remove}})
    assert status == 201, body
    cid = body["Id"]
    conn = UnixHTTPConnection(stalled.sock, timeout=15)
    try:
        conn.request("POST", "/v1.44/containers/%s/wait?condition=%s" % (cid, condition))
        r = conn.getresponse()
        assert r.status == 200  # headers out; the handler is now held
        status, body = stalled.request("POST", "/containers/%s/start" % cid)
        assert status == 204, body
        end = time.monotonic() + 15
        want = "gone" if auto_remove else "exited"
        while _state(stalled, cid) != want and time.monotonic() < end:
            time.sleep(0.05)
        assert _state(stalled, cid) == want
        open(stalled.go, "w").close()  # the handler runs on, after the exit
        assert json.loads(r.read()) == {"StatusCode": 3, "Error": None}
    finally:
        conn.close()
        stalled.request("DELETE", "/containers/%s?force=1" % cid)
