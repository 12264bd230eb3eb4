"""Bad input: unsupported options refused by name, wrong requests answered as dockerd does."""

import socket

import pytest

from .conftest import dock, ok

pytestmark = pytest.mark.root


@pytest.mark.parametrize("flags,named", [
    (["--device", "/dev/null:/dev/n:r"], "--device /dev/null:/dev/n: only rw or rwm access is supported"),
    (["--ulimit", "nofile=10:10"], "--ulimit"),
    (["--gpus", "all"], "--gpus"),
    (["--device-read-bps", "/dev/sda:1mb"], "--device-read-bps"),
    (["--cpuset-mems", "0"], "--cpuset-mems"),
    (["--runtime", "kata"], "Unknown runtime specified kata"),  # dockerd's words for a runtime it lacks
    (["--group-add", "nosuchgroup"], "find group nosuchgroup"),  # accepted; an unknown name fails at start
    (["--oom-kill-disable"], "--oom-kill-disable"),
    (["--security-opt", "apparmor=myprofile"], "--security-opt apparmor=myprofile"),
    (["--storage-opt", "size=1G"], "--storage-opt"),
])
def test_unsupported_run_options_are_refused_by_name(env, flags, named):
    r = dock(env, "run", "--rm", *flags, "busybox", "true")
    assert r.returncode == 125 and named in r.stderr, r.stderr
    assert "compat" not in r.stderr  # and nothing was created
    assert dock(env, "ps", "-a", "-q", "--filter", "status=created").returncode == 0


@pytest.mark.parametrize("body,named", [
    ({"Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": "/dev/sda0", "PathInContainer": "/dev/n",
                                                      "CgroupPermissions": "rwm"}]}}, "--device /dev/sda0"),
    ({"Image": "busybox", "HostConfig": {"OomScoreAdj": 5000}}, "oom score adj"),
    ({"Image": "busybox", "HostConfig": {"MaskedPaths": ["/etc"]}}, "MaskedPaths"),
    ({"Image": "busybox", "HostConfig": {"Sysctls": {"kernel.shmmax": "1"}}, "Cmd": ["true"]}, None),
    ({"Image": "busybox", "HostConfig": {"StorageOpt": {"size": "1G"}}}, "--storage-opt"),
    ({"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "syslog"}}}, "syslog"),
])
def test_unsupported_host_config_fields(engine, body, named):
    body = dict(body, Cmd=["true"])
    status, resp = engine.request("POST", "/containers/create?name=compat-bad", body)
    if named is None:
        assert status == 201  # implemented
        engine.request("DELETE", "/containers/compat-bad")
        return
    assert status == 400 and named in resp["message"], resp


def test_wrong_requests(engine):
    assert engine.request("GET", "/v1.44/containers/json?filters=notjson")[0] == 400
    status, body = engine.request("GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D")
    assert status == 400 and body["message"] == "Invalid filter 'bogus'"
    status, body = engine.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"Memory": 1024}})
    assert status == 400 and "Minimum memory limit" in body["message"]
    status, body = engine.request("POST", "/containers/compat-nosuch/start")
    assert status == 404 and body["message"] == "No such container: compat-nosuch"
    status, body = engine.request("PUT", "/containers/json")
    assert status == 404 and body == {"message": "page not found"}
    status, body = engine.request("GET", "/v1.99/version")
    assert status == 400 and "too new" in body["message"]


def test_garbage_on_the_socket_leaves_engine_serving(engine):
    for junk in (b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\nshort", b"\x00\x01\x02"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        s.connect(engine.sock)
        s.sendall(junk)
        s.close()
    assert engine.request("GET", "/_ping")[0] == 200


def test_start_of_a_running_container_is_not_an_error(env):
    ok(env, "run", "-d", "--name", "compat-twice", "--network", "none", "busybox", "sleep", "100")
    assert ok(env, "start", "compat-twice") == "compat-twice\n"
    r = dock(env, "rm", "compat-twice")
    assert r.returncode == 1 and "container is running" in r.stderr
    assert ok(env, "rm", "-f", "-v", "compat-twice") == "compat-twice\n"
