"""Reading a container's json-file log (written by its shim): tail, since/until, follow."""

from __future__ import annotations

import json
import os
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


def _decode(line):
    try:
        rec = json.loads(line)
        return _STREAMS.get(rec.get("stream"), 1), rec.get("log", "").encode("utf-8", "surrogateescape"), rec.get("time", "")
    except (ValueError, AttributeError):
        return None


def read(path, stdout=True, stderr=True, tail=None, since=0.0, until=0.0, follow=False,
         is_running=lambda: False, stop=lambda: False, poll=0.05):
    """Yield (stream, data, time_text) entries of a json-file log.

    Args:
        tail: only the last N lines (None = all).
        since, until: unix times bounding entries (0 = unbounded).
        follow: keep reading new entries while ``is_running()``; return once it is false and the
            file is read to its end.
        stop: returns true when the reader should give up (client gone, engine stopping).
    """
    want = set()
    if stdout:
        want.add(1)
    if stderr:
        want.add(2)
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
                data = pending + chunk
                lines = data.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not line:
                        continue
                    ent = _decode(line)
                    if ent is None or ent[0] not in want:
                        continue
                    if check_time:
                        t = parse_time(ent[2]).timestamp()
                        if since and t < since:
                            continue
                        if until and t > until:
                            return
                    yield ent
                continue
            if not follow or stop():
                return
            running = is_running()
            time.sleep(poll)
            if not running:
                # one more pass picks up what the shim wrote just before exiting
                follow = False
