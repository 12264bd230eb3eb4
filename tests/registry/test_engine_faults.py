"""Faults seen through the engine: a registry killed mid-pull, clients that go away mid-pull or
mid-push, concurrent pulls of one image."""

import json
import os
import socket
import subprocess
import time

import pytest

from hostbridge.guest.registry.client import RegistryClient
from hostbridge.guest.registry.errors import RegistryNotFound
from tests.registry import regsupport
from tests.registry.engine_support import CFG, docker, image_files, image_ids, push_image

pytestmark = pytest.mark.root


def test_registry_killed_mid_pull_then_retry_resumes(tmp_path, engine, docker_env, busybox_rootfs_tar,
                                                      registry, proxy):
    _, iid = push_image(tmp_path, "%s/killed:1" % registry.domain, [{"big": os.urandom(3 << 20)}],
                        busybox_rootfs_tar)
    proxy.on_blob_half = lambda path: registry.kill()
    name = "%s/killed:1" % proxy.domain
    r = docker(docker_env, "pull", name, check=False)
    assert r.returncode != 0
    assert "cannot reach registry %s" % proxy.domain in r.stderr and "retry" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert iid not in image_ids(docker_env)
    assert image_files(engine)["tmp"] == []

    registry.start()
    proxy.log.clear()
    docker(docker_env, "pull", name)
    assert docker(docker_env, "inspect", "-f", "{{.Id}}", name).stdout.strip() == iid
    ranges = [rng for (meth, p, rng) in proxy.log if meth == "GET" and "/blobs/" in p and rng]
    assert ranges and all(x != "bytes=0-" for x in ranges)  # resumed, not started over
    assert image_files(engine)["downloads"] == []
    docker(docker_env, "rmi", name)


def _leave_after(engine, target, marker, timeout=15):
    """POST ``target`` on a raw connection, read until ``marker`` shows up, then hang up.

    Returns:
        The bytes read (status line, headers and the first stream lines).
    """
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(engine.sock)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: e30=\r\nContent-Length: 0\r\n\r\n"
                   % target).encode())
        got = b""
        end = time.monotonic() + timeout
        while marker not in got and time.monotonic() < end:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def test_client_gone_mid_pull_stops_the_pull(tmp_path, engine, docker_env, busybox_rootfs_tar, registry, proxy):
    _, iid = push_image(tmp_path, "%s/slow:1" % registry.domain, [{"x": os.urandom(200000)}], busybox_rootfs_tar)
    held = []

    def slow_blobs(handler, method, path):
        if method == "GET" and "/blobs/" in path and len(held) < 5:
            held.append(path)
            time.sleep(1.5)  # long enough for the client to leave first
        return False
    proxy.rules.append(slow_blobs)
    before = image_files(engine)
    log_start = os.path.getsize(engine.log)
    got = _leave_after(engine, "/v1.44/images/create?fromImage=%s/slow&tag=1" % proxy.domain, b"Pulling fs layer")
    assert got.startswith(b"HTTP/1.1 200") and b"Pulling fs layer" in got
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = image_files(engine)
        if now["downloads"] == [] and now["tmp"] == [] and len(held) >= 1:
            break
        time.sleep(0.2)
    time.sleep(2)  # the stopped pull would have finished by now
    assert iid not in image_ids(docker_env)
    assert image_files(engine) == before
    assert engine.request("GET", "/_ping")[0] == 200
    with open(engine.log) as f:
        f.seek(log_start)
        assert "Traceback" not in f.read()  # a clean stop, not a bug
    docker(docker_env, "pull", "%s/slow:1" % proxy.domain)  # and a new pull works
    docker(docker_env, "rmi", "%s/slow:1" % proxy.domain)


def test_concurrent_pulls_of_one_image(tmp_path, engine, docker_env, busybox_rootfs_tar, registry):
    name = "%s/together:1" % registry.domain
    _, iid = push_image(tmp_path, name, [{"a": os.urandom(400000)}, {"b": os.urandom(400000)}], busybox_rootfs_tar)
    env = docker_env
    procs = [subprocess.Popen(["docker", "pull", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert docker(env, "inspect", "-f", "{{.Id}}", name).stdout.strip() == iid
    again = docker(env, "pull", name).stdout
    assert "Status: Image is up to date for %s" % name in again
    assert image_files(engine)["downloads"] == [] and image_files(engine)["tmp"] == []
    docker(env, "rmi", name)


def test_client_gone_mid_push_stops_and_cleans_up(tmp_path, engine, docker_env, registry, proxy):
    name = "%s/leaving:1" % proxy.domain
    tar = str(tmp_path / "big.tar")
    with open(tar, "wb") as f:
        f.write(os.urandom(3 << 20))
    cid = docker(docker_env, "create", "busybox", "true").stdout.strip()
    try:
        docker(docker_env, "cp", tar, cid + ":/big.bin")
        docker(docker_env, "commit", cid, name)
    finally:
        docker(docker_env, "rm", "-f", cid)
    held = []

    def slow_uploads(handler, method, path):
        if method in ("PATCH", "PUT") and "/blobs/uploads/" in path and len(held) < 5:
            held.append(path)
            time.sleep(1.5)
        return False
    proxy.rules.append(slow_uploads)
    got = _leave_after(engine, "/v1.44/images/%s/push?tag=1" % name.rsplit(":", 1)[0].replace("/", "%2F"),
                       b"Preparing")
    assert got.startswith(b"HTTP/1.1 200") and b"The push refers to repository" in got
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and image_files(engine)["tmp"]:
        time.sleep(0.2)
    assert image_files(engine)["tmp"] == []  # the compressed copies are gone
    time.sleep(3)  # held uploads end; a push that went on would have put its manifest by now
    with pytest.raises(RegistryNotFound):
        with RegistryClient(registry.domain, config=CFG).request(
                "GET", "/v2/leaving/manifests/1", ["repository:leaving:pull"]) as resp:
            resp.read()
    assert engine.request("GET", "/_ping")[0] == 200
    docker(docker_env, "rmi", name)


def test_403_and_429_are_one_line_errors_saying_what_to_do(docker_env, registry, proxy):
    def body(code, message):
        return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    proxy.rules.append(lambda h, meth, p: "/manifests/" in p and "forbidden" in p and regsupport.reply(
        h, 403, body("DENIED", "requested access to the resource is denied")) is None)
    proxy.rules.append(lambda h, meth, p: "/manifests/" in p and "busy" in p and regsupport.reply(
        h, 429, body("TOOMANYREQUESTS", "slow down")) is None)
    for repo, words in (("forbidden", ("denied:", "permissions")), ("busy", ("toomanyrequests:", "retry later"))):
        r = docker(docker_env, "pull", "%s/%s:1" % (proxy.domain, repo), check=False)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert all(w in r.stderr for w in words), r.stderr
