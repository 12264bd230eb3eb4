"""A container's json-file log (written by its shim): its size limits, and reading it (tail,
since/until, follow) across the rotated files ``name.log.N`` … ``name.log.1``, ``name.log``."""

from __future__ import annotations

import json
import os
import re
import struct
import time

from ..errors import InvalidParameter
from ..runtime.filewatch import IN_CLOSE_WRITE, DirWatch
from ..util import parse_time

_STREAMS = {"stdout": 1, "stderr": 2}
_FRAME = struct.Struct(">BxxxL")
# the options each driver knows (dockerd refuses any other key at create)
_OPTS = {"json-file": ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"),
         "local": ("max-file", "max-size", "compress")}
# dockerd's built-in drivers beyond ours: named so, not answered as a missing plugin
_DOCKERD_DRIVERS = ("awslogs", "etwlogs", "fluentd", "gcplogs", "gelf", "journald", "logentries", "splunk", "syslog")
_LOCAL_DEFAULTS = (20 * 1024 * 1024, 5)  # dockerd's local driver: max-size 20m, max-file 5
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def _human_size(text, binary):
    """go-units' FromHumanSize (decimal: ``k`` = 1000) or RAMInBytes (binary: ``k`` = 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError("invalid size: '%s'" % text)
    unit = "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * (1024 if binary else 1000) ** unit)


def log_driver_known(kind) -> None:
    """Refuse a log driver this engine does not have, in dockerd's words where dockerd has none.

    Args:
        kind: LogConfig.Type.

    Raises:
        InvalidParameter: dockerd's plugin-lookup text for a name it does not know either; our own
            for a driver of dockerd's that this engine lacks.
    """
    if kind in ("json-file", "local", "none"):
        return
    if kind in _DOCKERD_DRIVERS:
        raise InvalidParameter("logging driver %s is not supported by this engine (json-file, local, none)" % kind)
    # dockerd looks an unknown name up as a logging plugin; it has none of that name either
    raise InvalidParameter('error looking up logging plugin %s: plugin "%s" not found' % (kind, kind))


def log_limits(log_config) -> tuple:
    """``(max_size, max_file)`` for a container's LogConfig, as dockerd's drivers read them.

    Args:
        log_config: HostConfig.LogConfig (``{"Type", "Config"}``).

    Returns:
        tuple: bytes per file (0 = unbounded) and the number of files kept.

    Raises:
        InvalidParameter: an unknown option or a bad value, with dockerd's text.
    """
    kind = (log_config or {}).get("Type") or "json-file"
    opts = (log_config or {}).get("Config") or {}
    if kind not in _OPTS:
        return 0, 1
    for key in opts:
        if key not in _OPTS[kind]:
            if kind == "local":
                raise InvalidParameter("unknown log opt '%s' for log driver local" % key)
            raise InvalidParameter("unknown log opt '%s' for json-file log driver" % key)
    fail = "failed to initialize logging driver: "
    if kind == "local":
        size, files = _LOCAL_DEFAULTS
        if "max-size" in opts:
            try:
                size = _human_size(opts["max-size"], binary=True)
            except ValueError as e:
                raise InvalidParameter(fail + "invalid value for max-size: %s: %s" % (opts["max-size"], e))
        if "max-file" in opts:
            try:
                files = int(opts["max-file"])
            except ValueError:
                raise InvalidParameter(fail + "invalid value for max-file: %s" % opts["max-file"])
        if files < 2 and opts.get("compress", "true") != "false":
            raise InvalidParameter(fail + "compression cannot be enabled when max file count is 1")
        return size, max(1, files)
    if opts.get("compress") not in (None, "false"):
        # rotated files would be gzipped by dockerd; this engine keeps them plain
        raise InvalidParameter("log opt compress=%s is not supported by this engine (json-file keeps "
                               "rotated files uncompressed): drop it" % opts["compress"])
    size = 0
    if "max-size" in opts:
        try:
            size = _human_size(opts["max-size"], binary=False)
        except ValueError as e:
            raise InvalidParameter(fail + str(e))
        if size <= 0:
            raise InvalidParameter(fail + "max-size must be a positive number")
    files = 1
    if "max-file" in opts:
        try:
            files = int(opts["max-file"])
        except ValueError:
            raise InvalidParameter(fail + 'strconv.Atoi: parsing "%s": invalid syntax' % opts["max-file"])
        if files < 1:
            raise InvalidParameter(fail + "max-file cannot be less than 1")
    return size, files


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


def log_files(path) -> list:
    """The files of the log ``path``, oldest first: ``path.N`` … ``path.1`` (those present), ``path``."""
    rotated, i = [], 1
    while os.path.exists("%s.%d" % (path, i)):
        rotated.append("%s.%d" % (path, i))
        i += 1
    return rotated[::-1] + [path]


def _tail_start(files, n):
    """(index in ``files``, byte offset) where the last ``n`` lines across ``files`` start."""
    for i in range(len(files) - 1, -1, -1):
        try:
            with open(files[i], "rb") as f:
                if i == 0 or n <= 0:
                    return i, _tail_offset(f, n)
                off = _tail_offset(f, n)
                if off > 0:
                    return i, off
                f.seek(0)
                n -= sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
                if n <= 0:
                    return i, 0
        except FileNotFoundError:
            continue  # rotated away meanwhile
    return 0, 0


def read_batches(path, stdout=True, stderr=True, tail=None, since=0.0, until=0.0, follow=False,
                 is_running=lambda: False, stop=lambda: False, wait_exit=lambda timeout: None):
    """Yield lists of (stream, text, time_text) entries of a json-file log, a read's worth each.

    The rotated files (``path.N`` … ``path.1``) are read first, oldest first; while following,
    a rotation of ``path`` (a new inode) or its truncation (``max-file=1``) is followed too.
    A follower sleeps on inotify until the writer (the shim) appends, rotates or closes the log.

    Args:
        tail: only the last N lines (None = all).
        since, until: unix times bounding entries (0 = unbounded).
        follow: keep reading new entries while ``is_running()``; return once it is false and the
            file is read to its end.
        stop: returns true when the reader should give up (client gone, engine stopping).
        wait_exit: ``wait_exit(timeout)`` blocks until the container has stopped running or
            ``timeout`` s passed; called once its shim closed the log (it does so before the
            exit is recorded).
    """
    want = set()
    if stdout:
        want.add("stdout")
    if stderr:
        want.add("stderr")
    # taken before anything is read: a writer seen stopped here has written all it will
    running = follow and is_running()
    watch = _watch(os.path.dirname(path)) if running else None
    files = log_files(path)
    first, offset = (0, 0) if tail is None or tail < 0 else _tail_start(files, tail)
    check_time = bool(since or until)
    done = []

    def batches(data):
        batch = []
        for rec in _decode_batch([x for x in data.split(b"\n") if x]):
            stream = rec.get("stream")
            if stream not in want:
                continue
            t = rec.get("time", "")
            if check_time:
                ts = parse_time(t).timestamp()
                if since and ts < since:
                    continue
                if until and ts > until:
                    done.append(True)
                    break
            batch.append((_STREAMS[stream], rec.get("log", ""), t))
        return batch

    f = None
    try:
        for i in range(first, len(files)):
            try:
                f = open(files[i], "rb")
            except FileNotFoundError:
                continue
            if i == first:
                f.seek(offset)
            pending = b""
            while True:
                chunk = f.read(1 << 20)
                if chunk:
                    data, _, pending = (pending + chunk).rpartition(b"\n")
                    batch = batches(data)
                    if batch:
                        yield batch
                    if done:
                        return
                    continue
                if files[i] != path or not running or stop():
                    break
                f = _reopen_if_rotated(f, path)
                if f is None:
                    return
                running = is_running()
                if not running:
                    continue  # one more pass reads what the shim wrote before its exit was recorded
                changes = watch.wait(1.0)  # bounded: stop() and is_running() are asked again
                if any(mask & IN_CLOSE_WRITE and name == os.path.basename(path) for mask, name in changes):
                    wait_exit(0.5)
            f.close()
            f = None
    finally:
        if f is not None:
            f.close()
        if watch is not None:
            watch.close()


class _Poll:
    """The stand-in for a DirWatch where inotify is missing: a short sleep."""

    def wait(self, timeout):
        time.sleep(min(timeout, 0.05))
        return []

    def close(self):
        pass


def _watch(directory):
    try:
        return DirWatch(directory)
    except OSError:
        return _Poll()


def _reopen_if_rotated(f, path):
    """``f`` (at its end), or ``path`` opened anew when the writer rotated or truncated it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f
    if st.st_ino != os.fstat(f.fileno()).st_ino:
        f.close()  # at its end: all of the rotated file was read
        try:
            return open(path, "rb")
        except FileNotFoundError:
            return None
    if st.st_size < f.tell():
        f.seek(0)  # truncated (max-file=1)
    return f


def render(batch, multiplexed, timestamps=False):
    """The wire bytes of a batch: raw (TTY) or one 8-byte-framed message per entry, as dockerd
    sends them (a line-by-line reader such as the SDK's ``logs(stream=True)`` gets a line each)."""
    if timestamps:
        texts = [(stream, (t + " " + s).encode("utf-8", "surrogateescape")) for stream, s, t in batch]
    else:
        texts = [(stream, s.encode("utf-8", "surrogateescape")) for stream, s, _ in batch]
    if not multiplexed:
        return b"".join([data for _, data in texts])
    pack = _FRAME.pack
    return b"".join([pack(stream, len(data)) + data for stream, data in texts])
