"""hostbridge.client.streams and endpoints: frames, JSON streams, endpoint parsing and choice."""

import io

import pytest

from hostbridge.client.endpoint import parse_endpoint, resolve_endpoint
from hostbridge.client.streams import frame, frames, json_stream
from hostbridge.config import load
from hostbridge.errors import ConfigError, MachineError
from hostbridge.machines.record import Machine


def test_frames_round_trip_across_odd_reads():
    data = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"") + frame(1, b"x" * 70000)
    src = io.BytesIO(data)

    def read(n):  # a slow source: at most 3 bytes per read
        return src.read(min(n, 3))

    assert list(frames(read)) == [(1, b"hello\n"), (2, b"oops\n"), (1, b""), (1, b"x" * 70000)]


def test_truncated_frame_is_an_error():
    src = io.BytesIO(frame(1, b"hello")[:-2])
    with pytest.raises(ValueError):
        list(frames(src.read))


def test_json_stream_splits_objects_across_chunks():
    chunks = [b'{"status":"a"}\r\n{"str', b'eam":"Loaded image: x\\n"}', b'{"status":', b'"sha256:1"}\n']
    assert list(json_stream(chunks)) == [{"status": "a"}, {"stream": "Loaded image: x\n"}, {"status": "sha256:1"}]


def test_endpoint_parsing():
    assert parse_endpoint("unix:///run/x.sock").path == "/run/x.sock"
    assert parse_endpoint("/run/x.sock").url == "unix:///run/x.sock"
    tcp = parse_endpoint("tcp://127.0.0.1:2375")
    assert (tcp.host, tcp.port, tcp.base_url) == ("127.0.0.1", 2375, "http://127.0.0.1:2375")
    for bad in ("ssh://host", "tcp://127.0.0.1", "unix://"):
        with pytest.raises(ConfigError):
            parse_endpoint(bad)


def _config(tmp_path, **env):
    return load(environ=env, path=str(tmp_path / "none.toml"))


def test_endpoint_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    # Nothing set: native's socket.
    assert resolve_endpoint(_config(tmp_path)).url == "unix:///run/hostbridge/docker.sock"
    # An explicit host wins over everything.
    assert resolve_endpoint(_config(tmp_path, HOSTBRIDGE_HOST="tcp://127.0.0.1:9")).url == "tcp://127.0.0.1:9"
    # A machine's recorded endpoint.
    Machine("dev", mode="native", endpoint_url="unix:///tmp/dev.sock").save()
    assert resolve_endpoint(_config(tmp_path, HOSTBRIDGE_MACHINE="dev")).url == "unix:///tmp/dev.sock"
    with pytest.raises(MachineError, match="no machine named 'ghost'"):
        resolve_endpoint(_config(tmp_path, HOSTBRIDGE_MACHINE="ghost"))
    # A VM's endpoint is its tunnel agent's (hostbridge.machines.vmmode): a stopped VM has none.
    Machine("cold", mode="vm", driver="qemu").save()
    with pytest.raises(MachineError, match="machine cold is stopped"):
        resolve_endpoint(_config(tmp_path, HOSTBRIDGE_MACHINE="cold"))


def test_machine_record_keeps_fields_it_does_not_know(tmp_path, monkeypatch):
    import json

    from hostbridge.machines import record as machine

    monkeypatch.setenv("HOSTBRIDGE_HOME", str(tmp_path))
    m = Machine("far", mode="remote", fields={"endpoint": "unix", "ssh": {"hostname": "h"}})
    m.endpoint_url = "unix:///tmp/far.sock"
    m.save()
    again = machine.load("far")
    assert (again.mode, again.endpoint_url) == ("remote", "unix:///tmp/far.sock")
    assert again.fields["ssh"] == {"hostname": "h"}
    with open(m.paths.machine_json) as f:
        assert json.load(f)["endpoint"] == "unix"  # another module's field, untouched
    assert machine.list_names() == ["far"]
    # A record whose "endpoint" is a URL (older shape) reads as the endpoint URL.
    with open(m.paths.machine_json, "w") as f:
        json.dump({"mode": "vm", "endpoint": "tcp://127.0.0.1:7"}, f)
    assert machine.load("far").endpoint_url == "tcp://127.0.0.1:7"
