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


def test_non_tty_frames_stdout_and_stderr(bundles):
    c = bundles.make(["sh", "-c", "echo to-out; echo to-err >&2; echo again"])
    c.spawn()
    s = c.attach(stdin=False, stdout=True, stderr=True)
    c.start()
    frames = _frames(_read_all(s))
    s.close()
    assert _joined(frames, 1) == b"to-out\nagain\n"
    assert _joined(frames, 2) == b"to-err\n"
    assert c.wait(timeout=10)["exit_code"] == 0


def test_attach_stdout_only_gets_no_stderr(bundles):
    c = bundles.make(["sh", "-c", "echo o; echo e >&2"])
    c.spawn()
    s = c.attach(stdin=False, stdout=True, stderr=False)
    c.start()
    frames = _frames(_read_all(s))
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
    c = bundles.make(["sh", "-c", "tty; stty size; echo done"], process={"tty": True})
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
