"""POST /build's flow: HTTP errors before output, stream errors after, quiet mode."""

import io
import urllib.parse

import pytest

from hostbridge.guest.builder.parser import DockerfileParseError
from hostbridge.guest.builder.request import handle_build
from hostbridge.guest.errors import InvalidParameter, NotFound
from tests.guest.builder.conftest import context_tar


def call(backend, tmp_path, dockerfile, query="", files=None):
    sent = []
    result = handle_build(backend, urllib.parse.parse_qs(query, keep_blank_values=True),
                          io.BytesIO(context_tar(dockerfile, files)), sent.append, str(tmp_path))
    return result, sent


def test_success_streams_steps_aux_and_tags(backend, tmp_path):
    image_id, sent = call(backend, tmp_path, "FROM busybox\nENV A=1\n", "t=x&t=y:2")
    assert sent[-4:] == [{"aux": {"ID": image_id}}, {"stream": "Successfully built %s\n" % image_id[7:19]},
                         {"stream": "Successfully tagged x:latest\n"}, {"stream": "Successfully tagged y:2\n"}]
    assert backend.resolve_image("y:2")[0] == image_id


def test_errors_before_output_are_raised_for_an_http_status(backend, tmp_path):
    with pytest.raises(DockerfileParseError):
        call(backend, tmp_path, "FROM busybox\nFOO x\n")
    with pytest.raises(InvalidParameter, match="invalid buildargs"):
        call(backend, tmp_path, "FROM busybox\n", "buildargs=x")


def test_missing_base_image_is_a_stream_error_after_its_step_line(backend, tmp_path):
    result, sent = call(backend, tmp_path, "FROM nothere\n")
    assert result is None and sent[0] == {"stream": "Step 1/1 : FROM nothere\n"}
    assert "nothere" in sent[-1]["error"]


def test_errors_after_output_go_in_the_stream(backend, tmp_path):
    result, sent = call(backend, tmp_path, "FROM busybox\nCOPY missing /x\n", "t=never")
    assert result is None
    assert sent[0] == {"stream": "Step 1/2 : FROM busybox\n"}
    message = ("COPY failed: file not found in build context or excluded by .dockerignore: "
               "stat missing: file does not exist")
    assert sent[-1] == {"errorDetail": {"message": message}, "error": message}
    with pytest.raises(NotFound):
        backend.resolve_image("never")


def test_quiet_sends_only_the_id(backend, tmp_path):
    image_id, sent = call(backend, tmp_path, "FROM busybox\nENV A=1\n", "q=1")
    assert sent == [{"aux": {"ID": image_id}}, {"stream": image_id + "\n"}]


def test_quiet_failure_sends_the_held_output_then_the_error(backend, tmp_path):
    result, sent = call(backend, tmp_path, "FROM busybox\nCOPY missing /x\n", "q=1")
    assert result is None
    assert sent[0] == {"stream": "Step 1/2 : FROM busybox\n"}
    assert "error" in sent[-1]


def test_connection_closed_sees_the_peer_leave():
    import socket

    from hostbridge.guest.builder.request import connection_closed
    ours, theirs = socket.socketpair()
    try:
        closed = connection_closed(ours)
        assert closed() is False
        theirs.sendall(b"x")  # data pending is not a close
        assert closed() is False
        ours.recv(1)
        theirs.close()
        assert closed() is True
    finally:
        ours.close()


def test_connection_closed_and_the_frame_pump_work_past_fd_1024():
    # select.select raises ValueError for descriptors >= 1024, which a busy engine hands out
    import fcntl
    import resource
    import socket
    import struct

    from hostbridge.guest.builder.request import connection_closed
    from hostbridge.guest.builder.storebackend import _pump_frames
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip("host kernel: RLIMIT_NOFILE's hard limit (%d) allows no descriptor past 1024" % hard)
    if soft != resource.RLIM_INFINITY and soft < 1100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1100, hard))
    socks = []
    try:
        for _ in range(2):
            a, b = socket.socketpair()
            high = fcntl.fcntl(a.fileno(), fcntl.F_DUPFD, 1050)
            a.close()
            socks.append((socket.socket(fileno=high), b))
        (ours, theirs), (out_r, out_w) = socks
        assert ours.fileno() >= 1024 and out_r.fileno() >= 1024
        closed = connection_closed(ours)
        assert closed() is False
        theirs.close()
        assert closed() is True
        got = []
        out_w.sendall(b"\x01\x00\x00\x00" + struct.pack(">I", 3) + b"hi\n")
        out_w.close()
        _pump_frames(out_r, lambda data, stream: got.append((data, stream)), cancelled=lambda: False)
        assert got == [(b"hi\n", 1)]
    finally:
        for pair in socks:
            for s in pair:
                s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
