"""Reading a container's json-file log (written by its shim): tail, since/until, follow."""

from __future__ import annotations

import json
import os
import struct
import time

from ..util import parse_time

_STREAMS = {"stdout": 1, "stderr": 2}


def _tail_offset(f, n):
    """Byte offset where the last ``n`` lines of the open file ``f`` start."""
    if n <= 0:
        f.seek(0, os.SEEK_END)
        return f.tell()
    end = f.seek(0, os.SEEK_END)
    pos, count, block = end, 0, 65536
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step)
        if pos + step == end and buf.endswith(b"\n"):
            buf = buf[:-1]
        i = len(buf)
        while True:
            i = buf.rfind(b"\n", 0, i)
            if i < 0:
                break
            count += 1
            if count == n:
                return pos + i + 1
    return 0


def _decode_batch(lines):
    """Records of complete json-file lines: one C-level parse for the whole batch (a parse per
    line costs more than the rest of ``docker logs`` together); line by line if one is bad."""
    try:
        recs = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        recs = []
        for line in lines:
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue  # a damaged line: docker skips it too
    return [r for r in recs if isinstance(r, dict)]


def read_batches(path, stdout=True, stderr=True, tail=None, since=0.0, until=0.0, follow=False,
                 is_running=lambda: False, stop=lambda: False, poll=0.05):
    """Yield lists of (stream, text, time_text) entries of a json-file log, a read's worth each.

    Args:
        tail: only the last N lines (None = all).
        since, until: unix times bounding entries (0 = unbounded).
        follow: keep reading new entries while ``is_running()``; return once it is false and the
            file is read to its end.
        stop: returns true when the reader should give up (client gone, engine stopping).
    """
    want = set()
    if stdout:
        want.add("stdout")
    if stderr:
        want.add("stderr")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        if tail is not None and tail >= 0:
            f.seek(_tail_offset(f, tail))
        check_time = bool(since or until)
        pending = b""
        while True:
            chunk = f.read(1 << 20)
            if chunk:
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                batch = []
                for rec in _decode_batch([x for x in lines if x]):
                    stream = rec.get("stream")
                    if stream not in want:
                        continue
                    t = rec.get("time", "")
                    if check_time:
                        ts = parse_time(t).timestamp()
                        if since and ts < since:
                            continue
                        if until and ts > until:
                            if batch:
                                yield batch
                            return
                    batch.append((_STREAMS[stream], rec.get("log", ""), t))
                if batch:
                    yield batch
                continue
            if not follow or stop():
                return
            running = is_running()
            time.sleep(poll)
            if not running:
                # one more pass picks up what the shim wrote just before exiting
                follow = False


def render(batch, multiplexed, timestamps=False):
    """The wire bytes of a batch: raw (TTY) or in 8-byte frames, one frame per run of a stream."""
    out = []
    i, n = 0, len(batch)
    while i < n:
        stream = batch[i][0]
        j = i
        while j < n and batch[j][0] == stream:
            j += 1
        if timestamps:
            text = "".join(t + " " + s for _, s, t in batch[i:j])
        else:
            text = "".join([s for _, s, _ in batch[i:j]])
        data = text.encode("utf-8", "surrogateescape")
        out.append(struct.pack(">BxxxL", stream, len(data)) + data if multiplexed else data)
        i = j
    return b"".join(out)
