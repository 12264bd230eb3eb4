"""Per-OS answers (hostbridge/hostos.py), the npipe module's pure parts, and the client's
npipe:// endpoint. Windows itself cannot run here: these are the parts that do not call it."""

import socket
import struct
import threading

import pytest

from hostbridge import hostos
from hostbridge.client.endpoint import parse_endpoint
from hostbridge.errors import ConfigError
from hostbridge.tunnel import npipe
from hostbridge.tunnel.channels import pump_threads


def test_host_system_from_sys_platform():
    assert [hostos.host_system(p) for p in ("win32", "darwin", "linux", "freebsd13")] == \
        ["Windows", "Darwin", "Linux", "Linux"]


def test_the_local_endpoint_is_never_tcp():
    assert hostos.endpoint_kind("Windows") == "npipe"
    assert hostos.endpoint_kind("Darwin") == hostos.endpoint_kind("Linux") == "unix"


def test_pipe_names_from_machine_names():
    assert hostos.pipe_path("dev") == r"\\.\pipe\hostbridge-dev"
    assert hostos.npipe_url("dev") == "npipe:////./pipe/hostbridge-dev"
    assert hostos.pipe_name("we ird\\x") == "hostbridge-we_ird_x"


@pytest.mark.parametrize("url", ["npipe:////./pipe/hostbridge-dev", "npipe:///./pipe/hostbridge-dev",
                                 "npipe://\\\\.\\pipe\\hostbridge-dev", "npipe:////./PIPE/hostbridge-dev"])
def test_npipe_urls_the_docker_cli_accepts(url):
    assert hostos.pipe_path_from_url(url) == r"\\.\pipe\hostbridge-dev"
    ep = parse_endpoint(url)
    assert (ep.scheme, ep.path, ep.url) == ("npipe", r"\\.\pipe\hostbridge-dev", "npipe:////./pipe/hostbridge-dev")


@pytest.mark.parametrize("url", ["npipe:////server/pipe/x", "npipe:////./pipe/", "npipe:////./notpipe/x",
                                 "npipe:////./pipe/a/b"])
def test_bad_or_remote_pipes_are_refused(url):
    with pytest.raises(ValueError):
        hostos.pipe_path_from_url(url)
    with pytest.raises(ConfigError, match="npipe:////./pipe/NAME"):
        parse_endpoint(url)


def test_pipe_path_round_trip():
    assert hostos.url_from_pipe_path(r"\\.\pipe\docker_engine") == "npipe:////./pipe/docker_engine"
    with pytest.raises(ValueError):
        hostos.url_from_pipe_path(r"C:\pipe\x")


def test_sddl_grants_only_the_user_and_system():
    sid = "S-1-5-21-1004336348-1177238915-682003330-1001"
    sddl = hostos.owner_only_sddl(sid)
    assert sddl == "D:P(A;;GA;;;SY)(A;;GA;;;%s)" % sid
    # No Everyone (WD), Authenticated Users (AU), anonymous (AN) or network (NU) entry.
    assert not any(x in sddl for x in (";WD)", ";AU)", ";AN)", ";NU)", ";BU)"))
    for bad in ("", "WD", "S-1-5-21-1)(A;;GA;;;WD", "Everyone"):
        with pytest.raises(ValueError):
            hostos.owner_only_sddl(bad)


def test_default_shares_per_os():
    assert hostos.default_shares("Darwin", "/Users/ana") == ("/Users",)
    assert hostos.default_shares("Windows", r"C:\Users\ana") == (r"C:\Users",)
    assert hostos.default_shares("Windows", r"d:\Users\ana") == (r"D:\Users",)
    assert hostos.default_shares("Linux", "/home/ana") == ("/home/ana",)


@pytest.mark.parametrize("host,guest", [(r"C:\Users", "/c/Users"), (r"c:\Users\ana\proj", "/c/Users/ana/proj"),
                                        ("D:/work/x/", "/d/work/x"), ("C:\\", "/c"), ("C:", "/c")])
def test_windows_folders_land_under_the_drive_letter(host, guest):
    assert hostos.guest_path(host, "Windows") == guest


def test_posix_folders_land_at_the_same_path():
    assert hostos.guest_path("/Users/ana", "Darwin") == "/Users/ana"
    assert hostos.guest_path("/home/ana", "Linux") == "/home/ana"
    assert hostos.host_path_map(["/Users"], "Darwin") == {}
    assert hostos.host_path_map([r"C:\Users"], "Windows") == {r"C:\Users": "/c/Users"}


def test_npipe_imports_here_and_refuses_to_run():
    with pytest.raises(OSError, match="Windows only"):
        npipe.connect(r"\\.\pipe\hostbridge-dev", 1)
    with pytest.raises(OSError):
        npipe.connect_unix(r"C:\x\qmp.sock", 1)


def test_sockaddr_un_layout():
    raw = npipe.sockaddr_un(r"C:\Users\ana\AppData\Local\hostbridge\m\qmp.sock")
    assert len(raw) == 2 + 108
    assert struct.unpack("<H", raw[:2]) == (1,)
    assert raw[2:].rstrip(b"\0") == rb"C:\Users\ana\AppData\Local\hostbridge\m\qmp.sock"
    with pytest.raises(ValueError):
        npipe.sockaddr_un("C:\\" + "x" * 120)


def test_pump_threads_copies_both_ways_with_half_close():
    # What the agent runs for a pipe: here a socketpair stands in for both ends.
    local, client = socket.socketpair()
    far, engine = socket.socketpair()
    t = threading.Thread(target=pump_threads, args=(local, far))
    t.start()
    client.sendall(b"GET /_ping HTTP/1.1\r\n\r\n")
    client.shutdown(socket.SHUT_WR)  # stdin ended: the engine must see EOF
    got = b""
    while True:
        data = engine.recv(100)
        if not data:
            break
        got += data
    assert got == b"GET /_ping HTTP/1.1\r\n\r\n"
    engine.sendall(b"HTTP/1.1 200 OK\r\n\r\nOK")  # and the reply still flows back
    engine.close()
    reply = b""
    while True:
        data = client.recv(100)
        if not data:
            break
        reply += data
    assert reply == b"HTTP/1.1 200 OK\r\n\r\nOK"
    t.join(10)
    assert not t.is_alive()
    client.close()


def test_env_and_context_output_on_windows():
    from hostbridge import contexts
    from hostbridge.cli.env import apply_line, detect_shell, env_script

    url = hostos.npipe_url("dev")
    shell = detect_shell({}, platform="win32")
    assert shell == "powershell"
    assert env_script(shell, {"DOCKER_HOST": url}).splitlines()[0] == \
        "$Env:DOCKER_HOST = 'npipe:////./pipe/hostbridge-dev'"
    assert env_script("cmd", {"DOCKER_HOST": url}).splitlines()[0] == "SET DOCKER_HOST=npipe:////./pipe/hostbridge-dev"
    assert apply_line(shell, "hostbridge env dev") == "& hostbridge env dev | Invoke-Expression"
    assert apply_line("zsh", "hostbridge env") == 'eval "$(hostbridge env)"'
    assert contexts.context_meta("dev", url)["Endpoints"]["docker"]["Host"] == url


def test_env_and_context_output_on_macos():
    from hostbridge import contexts
    from hostbridge.cli.env import apply_line, detect_shell

    assert detect_shell({"SHELL": "/bin/zsh"}, platform="darwin") == "zsh"
    assert apply_line("fish", "hostbridge env dev") == "hostbridge env dev | source"
    meta = contexts.context_meta("dev", "unix:///tmp/hostbridge-501/dev/docker.sock")
    assert meta["Name"] == "hostbridge-dev" and meta["Metadata"]["Hostbridge"] == "dev"


def test_win32_structures_have_their_x64_layout():
    import ctypes

    if ctypes.sizeof(ctypes.c_void_p) != 8:
        pytest.skip("the sizes checked are those of 64-bit Windows")
    assert ctypes.sizeof(npipe.OVERLAPPED) == 32
    assert ctypes.sizeof(npipe.SECURITY_ATTRIBUTES) == 24
    assert npipe.OVERLAPPED.hEvent.offset == 24


def test_no_process_probe_would_terminate_a_process_on_windows(monkeypatch):
    # os.kill(pid, 0) is TerminateProcess on Windows: there every probe must ask npipe instead.
    import os

    from hostbridge.tunnel import control
    from hostbridge.machines import qemu, vmmode

    asked = []

    def never(*a):
        raise AssertionError("os.kill called: on Windows it would terminate the process")

    monkeypatch.setattr(npipe, "process_alive", lambda pid: asked.append(pid) or True)
    monkeypatch.setattr(os, "kill", never)
    monkeypatch.setattr(os, "name", "nt")
    no_such_pid = 4194304 + 17  # above Linux's pid_max: /proc has no entry for it
    assert control._pid_is_agent(no_such_pid, "/m") is True
    assert vmmode.pid_alive(no_such_pid) is True
    assert qemu.pid_alive(no_such_pid) is True
    assert asked == [no_such_pid] * 3
