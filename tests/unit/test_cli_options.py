"""hostbridge.cli.options and run's create body: docker's flag values → Engine API JSON."""

import pytest

from hostbridge.cli import options as opt
from hostbridge.cli.main import cli
from hostbridge.cli.run import build_config, start_error_status


def test_filters():
    assert opt.parse_filters(["status=exited", "label=a=b", "status=created"]) == \
        {"status": ["exited", "created"], "label": ["a=b"]}
    with pytest.raises(opt.UsageError, match="name=value"):
        opt.parse_filters(["status"])


def test_env_file(tmp_path):
    path = tmp_path / "env"
    path.write_bytes(b"\xef\xbb\xbf# comment\n\nA=1\n  B=indented value \nC=x=y\nFROM_HOST\nMISSING\nEMPTY=\n")
    assert opt.parse_env_file(str(path), {"FROM_HOST": "h"}) == ["A=1", "B=indented value ", "C=x=y", "FROM_HOST=h",
                                                                 "EMPTY="]


def test_env_file_rejects_names_with_spaces(tmp_path):
    path = tmp_path / "env"
    path.write_text("MY VAR=1\n")
    with pytest.raises(opt.UsageError, match="whitespace"):
        opt.parse_env_file(str(path), {})


def test_env_flags():
    assert opt.parse_env(["A=1", "HOME", "NOPE"], {"HOME": "/root"}) == ["A=1", "HOME=/root"]


@pytest.mark.parametrize("text,n", [("512m", 512 << 20), ("1g", 1 << 30), ("100", 100), ("1.5k", 1536),
                                    ("64MB", 64 << 20), ("2GiB", 2 << 30)])
def test_bytes(text, n):
    assert opt.parse_bytes(text) == n


def test_bad_sizes_and_cpus():
    with pytest.raises(opt.UsageError):
        opt.parse_bytes("lots")
    with pytest.raises(opt.UsageError):
        opt.parse_cpus("two")
    assert opt.parse_cpus("1.5") == 1_500_000_000


@pytest.mark.parametrize("spec,port,binding", [
    ("80", "80/tcp", {"HostIp": "", "HostPort": ""}),
    ("8080:80", "80/tcp", {"HostIp": "", "HostPort": "8080"}),
    ("127.0.0.1:8080:80/udp", "80/udp", {"HostIp": "127.0.0.1", "HostPort": "8080"}),
    ("127.0.0.1::80", "80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""}),
    ("[::1]:8080:80", "80/tcp", {"HostIp": "::1", "HostPort": "8080"}),
])
def test_ports(spec, port, binding):
    assert opt.parse_port(spec) == [(port, binding)]


def test_port_ranges():
    assert opt.parse_port("8000-8001:80-81") == [("80/tcp", {"HostIp": "", "HostPort": "8000"}),
                                                  ("81/tcp", {"HostIp": "", "HostPort": "8001"})]
    assert [p for p, _ in opt.parse_port("90-92/udp")] == ["90/udp", "91/udp", "92/udp"]
    for bad in ("8000-8002:80-81", "0:80", "70000", "80/icmp", "x:80", "81-80"):
        with pytest.raises(opt.UsageError):
            opt.parse_port(bad)


def test_restart_policies():
    assert opt.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert opt.parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(opt.UsageError):
        opt.parse_restart("sometimes")
    with pytest.raises(opt.UsageError):
        opt.parse_restart("always:3")


def test_volumes(tmp_path):
    assert opt.parse_volume("/data") == ("anonymous", "/data")
    assert opt.parse_volume("/h:/c:ro") == ("bind", "/h:/c:ro")
    # A Windows host's drive letter stays in the source; the engine translates it.
    assert opt.parse_volume("C:\\Users\\x:/x:ro", windows=True) == ("bind", "C:\\Users\\x:/x:ro")
    assert opt.parse_volume("c:/data", windows=False) == ("bind", "c:/data")  # volume c on a POSIX host
    assert opt.parse_volume("./x:/c", cwd=str(tmp_path)) == ("bind", "%s/x:/c" % tmp_path)
    with pytest.raises(opt.UsageError):
        opt.parse_volume("/h:relative")


def test_timestamps():
    assert opt.parse_timestamp("10m", now=1000.0) == "400"
    assert opt.parse_timestamp("1h30m", now=10000.0) == "4600"
    assert opt.parse_timestamp("1700000000") == "1700000000"
    assert opt.parse_timestamp("2023-11-14T22:13:20Z") == "1700000000"


def _run_options(args):
    ctx = cli.make_context("hostbridge", ["run"] + args)
    sub = cli.get_command(ctx, "run")
    sub_ctx = sub.make_context("run", args, parent=ctx)
    return sub_ctx.params


def test_run_flags_parse_into_the_create_body(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=1\n")
    p = _run_options(["--rm", "--name", "web", "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp", "-u", "1000",
                      "--entrypoint", "", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "-l", "k=v",
                      "-h", "box", "--init", "--restart", "on-failure:2", "--stop-signal", "SIGINT",
                      "--stop-timeout", "3", "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
                      "-i", "-t", "-p", "8080:80", "-v", "/h:/c", "--network", "none",
                      "busybox", "sh", "-c", "echo -n hi"])
    body = build_config(p.pop("image"), p.pop("command"), p, attach=True, environ={})
    host = body.pop("HostConfig")
    assert body == {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo -n hi"], "Env": ["FROM_FILE=1", "A=1"], "WorkingDir": "/tmp",
        "User": "1000", "Hostname": "box", "StopSignal": "SIGINT", "StopTimeout": 3, "Entrypoint": [""],
        "Labels": {"k": "v"}, "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True,
        "OpenStdin": True, "StdinOnce": True, "ExposedPorts": {"80/tcp": {}},
    }
    assert host == {
        "Memory": 64 << 20, "NanoCpus": 500_000_000, "PidsLimit": 50, "Init": True,
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}, "ReadonlyRootfs": True,
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "NetworkMode": "none", "AutoRemove": True,
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, "Binds": ["/h:/c"],
    }


def test_run_stops_parsing_flags_at_the_image():
    p = _run_options(["-d", "busybox", "ls", "-l", "--rm"])
    assert p["detach"] and not p["rm"]
    assert p["command"] == ("ls", "-l", "--rm")


def test_start_error_statuses_follow_docker():
    assert start_error_status('exec: "nope": executable file not found in $PATH') == 127
    assert start_error_status("open /x: permission denied") == 126
    assert start_error_status("cgroup trouble") == 125
