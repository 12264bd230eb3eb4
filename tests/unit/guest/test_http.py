"""The engine's HTTP layer: chunked bodies, routing with docker's version prefixes."""

import io

import pytest

from hostbridge.guest.api.http import ChunkedReader, LengthReader
from hostbridge.guest.api.server import Router
from hostbridge.guest.errors import InvalidParameter


def test_chunked_body_is_dechunked_across_reads():
    raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    f = io.BytesIO(raw)
    r = ChunkedReader(f)
    assert r.read(3) == b"hel"
    assert r.read() == b"lo, world"
    assert r.read() == b""
    assert f.read() == b"NEXT"  # the next request on the connection is untouched


def test_truncated_chunked_body_is_a_bad_request():
    with pytest.raises(InvalidParameter):
        ChunkedReader(io.BytesIO(b"a\r\nabc")).read()
    with pytest.raises(InvalidParameter):
        ChunkedReader(io.BytesIO(b"zz\r\n")).read()


def test_length_reader_stops_at_content_length():
    f = io.BytesIO(b"abcdefXYZ")
    r = LengthReader(f, 6)
    assert r.read(4) == b"abcd" and r.read() == b"ef" and r.read() == b""
    assert f.read() == b"XYZ"


def test_router_matches_segments_and_greedy_image_names():
    r = Router()
    r.add("GET", "/images/json", "list")
    r.add("GET", "/images/{name*}/json", "inspect")
    r.add("POST", "/containers/{id}/start", "start")
    assert r.match("GET", "/images/json") == ("list", {})
    assert r.match("GET", "/images/localhost:5000/team/app:1.0/json") == ("inspect", {"name": "localhost:5000/team/app:1.0"})
    assert r.match("POST", "/containers/abc/start") == ("start", {"id": "abc"})
    assert r.match("HEAD", "/images/json") == ("list", {})
    handler, allowed = r.match("DELETE", "/containers/abc/start")
    assert handler is None and allowed == ["POST"]
    assert r.match("GET", "/nope") == (None, [])
