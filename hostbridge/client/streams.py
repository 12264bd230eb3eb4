"""Stream decoders: JSON progress streams and docker's 8-byte multiplexed frames.

Pure functions over byte sources, so they are tested without an engine.
"""

from __future__ import annotations

import json
import struct

STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxL")


def json_stream(chunks):
    """Decode a stream of JSON objects (newline-separated or back to back).

    Args:
        chunks: an iterable of ``bytes`` (e.g. ``response.iter_content(None)``).
    Yields:
        Each decoded object.
    Raises:
        ValueError: the stream ends in the middle of an object or holds non-JSON.
    """
    decoder = json.JSONDecoder()
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break  # incomplete: wait for more
            yield obj
            buf = buf[end:]
    if buf.strip():
        raise ValueError("truncated JSON stream: %r" % buf[:80])


def read_exact(read, n):
    """Read exactly ``n`` bytes with ``read(k)``; fewer only at end of stream."""
    parts, got = [], 0
    while got < n:
        data = read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def frames(read):
    """Split docker's multiplexed stream into ``(stream, payload)`` pairs.

    Each frame: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, 4-byte big-endian
    length, then the payload.

    Args:
        read: ``read(n) -> bytes`` returning ``b""`` at end of stream.
    Yields:
        ``(stream, payload)``; ends at end of stream.
    Raises:
        ValueError: the stream ends inside a frame.
    """
    while True:
        header = read_exact(read, 8)
        if not header:
            return
        if len(header) < 8:
            raise ValueError("multiplexed stream ended inside a frame header")
        stream, length = _HEADER.unpack(header)
        payload = read_exact(read, length)
        if len(payload) < length:
            raise ValueError("multiplexed stream ended inside a frame")
        yield stream, payload


def frame(stream, payload: bytes) -> bytes:
    """Encode one multiplexed frame (the inverse of ``frames``)."""
    return _HEADER.pack(stream, len(payload)) + payload


def raw_chunks(read, size=32768):
    """Yield ``(STDOUT, data)`` from a raw (TTY) stream until its end."""
    while True:
        data = read(size)
        if not data:
            return
        yield STDOUT, data
