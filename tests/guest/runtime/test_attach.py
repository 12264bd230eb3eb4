"""Attach streams: docker's frames without a tty, raw bytes with one; stdin and half-close."""

from __future__ import annotations

import socket
import struct
import time

import pytest

pytestmark = pytest.mark.root


def _read_all(s: socket.socket, timeout=10) -> bytes:
    s.settimeout(timeout)
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _frames(data: bytes) -> list:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxI", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def _joined(frames, stream) -> bytes:
    return b"".join(d for s, d in frames if s == stream)


def _attached_output(bundles, args, **streams):
    """Create, attach, start; all the frames the attach stream got, and the exit record."""
    c = bundles.make(args)
    c.spawn()
    s = c.attach(stdin=False, **streams)
    c.start()
    frames = _frames(_read_all(s))
    s.close()
    return frames, c.wait(timeout=10)


def test_non_tty_frames_stdout_and_stderr(bundles):
    frames, rec = _attached_output(bundles, ["sh", "-c", "echo to-out; echo to-err >&2; echo again"],
                                   stdout=True, stderr=True)
    assert _joined(frames, 1) == b"to-out\nagain\n"
    assert _joined(frames, 2) == b"to-err\n"
    assert rec["exit_code"] == 0


def test_attach_stdout_only_gets_no_stderr(bundles):
    frames, _ = _attached_output(bundles, ["sh", "-c", "echo o; echo e >&2"], stdout=True, stderr=False)
    assert frames == [(1, b"o\n")]


def test_stdin_reaches_cat_and_half_close_ends_it(bundles):
    c = bundles.make(["cat"], process={"open_stdin": True, "stdin_once": True})
    c.spawn()
    s = c.attach(stdin=True, stdout=True, stderr=True)
    c.start()
    s.sendall(b"hello\nworld\n")
    s.shutdown(socket.SHUT_WR)
    frames = _frames(_read_all(s))
    assert _joined(frames, 1) == b"hello\nworld\n"
    assert c.wait(timeout=10)["exit_code"] == 0


def test_tty_is_raw_and_tty_works(bundles):
    c = bundles.make(["sh", "-c", "tty; stty size; echo done > /dev/console"], process={"tty": True})
    c.spawn()
    s = c.attach(stdin=False, stdout=True, stderr=True)
    c.resize(30, 100)
    c.start()
    data = _read_all(s)
    assert data.replace(b"\r\n", b"\n") == b"/dev/pts/0\n30 100\ndone\n"
    logs = bundles.log(c)
    assert [r["stream"] for r in logs] == ["stdout"] * 3


def test_tty_stdin_interactive_shell(bundles):
    c = bundles.make(["sh"], process={"tty": True, "open_stdin": True, "stdin_once": True})
    c.spawn()
    s = c.attach(stdin=True, stdout=True, stderr=True)
    c.start()
    s.sendall(b"echo $((6*7))\n")
    s.settimeout(10)
    buf, deadline = b"", time.monotonic() + 10
    while b"42\r\n" not in buf and time.monotonic() < deadline:
        buf += s.recv(4096)
    assert b"42\r\n" in buf
    s.sendall(b"exit 5\n")
    _read_all(s)
    assert c.wait(timeout=10)["exit_code"] == 5


def test_second_attach_client_and_late_attach(bundles):
    c = bundles.make(["sh", "-c", "read x; echo got $x"], process={"open_stdin": True})
    c.spawn()
    c.start()
    a = c.attach(stdin=True, stdout=True, stderr=False)
    b = c.attach(stdin=False, stdout=True, stderr=False)
    a.sendall(b"ping\n")
    fa, fb = _frames(_read_all(a)), _frames(_read_all(b))
    assert fa == fb == [(1, b"got ping\n")]


def test_no_output_lost_to_a_slow_client(bundles):
    c = bundles.make(["seq", "1", "100000"])
    c.spawn()
    s = c.attach(stdin=False, stdout=True, stderr=True)
    c.start()
    rec = c.wait(timeout=20)  # the container is done before the client has read anything
    assert rec["exit_code"] == 0
    time.sleep(0.2)
    frames = _frames(_read_all(s))
    expected = "".join("%d\n" % i for i in range(1, 100001)).encode()
    assert _joined(frames, 1) == expected
    assert "".join(r["log"] for r in bundles.log(c)).encode() == expected


def test_detaching_client_leaves_stdin_open_without_stdin_once(bundles):
    c = bundles.make(["sh", "-c", "read a; read b; echo $a $b"], process={"open_stdin": True})
    c.spawn()
    c.start()
    first = c.attach(stdin=True, stdout=False, stderr=False)
    first.sendall(b"one\n")
    first.shutdown(socket.SHUT_WR)
    first.close()
    second = c.attach(stdin=True, stdout=True, stderr=False)
    second.sendall(b"two\n")
    assert _frames(_read_all(second)) == [(1, b"one two\n")]
    assert c.wait(timeout=10)["exit_code"] == 0


def test_stdin_sent_with_the_attach_request(bundles):
    import json

    c = bundles.make(["cat"], process={"open_stdin": True, "stdin_once": True})
    c.spawn()
    c.start()
    s = socket.socket(socket.AF_UNIX)
    s.connect(c.sock_path)
    s.sendall(json.dumps({"op": "attach", "stdin": True, "stdout": True}).encode() + b"\nearly\n")
    s.shutdown(socket.SHUT_WR)
    data = _read_all(s)
    assert data.startswith(b'{"ok":true}\n')
    assert _frames(data[len(b'{"ok":true}\n'):]) == [(1, b"early\n")]
