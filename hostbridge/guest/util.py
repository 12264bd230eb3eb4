"""Small helpers every part of the engine uses: atomic files, ids, docker-shaped times."""

from __future__ import annotations

import json
import os
import time

ZERO_TIME = "0001-01-01T00:00:00Z"


def new_id() -> str:
    """A fresh 64-hex-digit id, as docker's container and exec ids."""
    # secrets.token_hex's own bytes; secrets (hashlib, OpenSSL, random) costs a start tens of ms
    return os.urandom(32).hex()


def now_rfc3339() -> str:
    """The current UTC time in RFC 3339 with nanosecond digits and a zone, as docker prints it."""
    # format_time's form without datetime, whose import is a fair part of a start in an emulated guest
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10 ** 9)) + ".%06d000Z" % (ns // 1000 % 10 ** 6)


def format_time(dt) -> str:
    """A datetime.datetime in docker's RFC 3339 form (UTC, nanosecond digits)."""
    import datetime

    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(text: str):
    """Parse an RFC 3339 time as docker writes it (up to nanoseconds, Z or an offset) into a
    datetime.datetime (datetime is imported here: a start need not)."""
    import datetime

    if not text or text.startswith("0001-01-01"):
        return datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    if "." in t:
        head, rest = t.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        t = head + "." + (digits + "000000")[:6] + rest
    return datetime.datetime.fromisoformat(t)


def unix_time(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 time (0 for docker's zero time)."""
    if not text or text.startswith("0001-01-01"):
        return 0
    return int(parse_time(text).timestamp())


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never half.

    ``durable=False`` skips the fsync (milliseconds) for files that mean nothing after a crash.
    """
    d = os.path.dirname(path) or "."
    fd, tmp = _temp_file(d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _temp_file(d):
    """(fd, path) of a new file only we opened in ``d``, as tempfile.mkstemp makes it (tempfile's
    import is a fair part of a start in an emulated guest, where the first writes happen)."""
    for _ in range(100):
        path = os.path.join(d, ".tmp-" + os.urandom(6).hex())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError("no free temporary file name in %s" % d)


def write_json(path: str, obj, mode: int = 0o644, durable: bool = True) -> None:
    """Atomically write ``obj`` as JSON (``durable`` as for ``atomic_write``)."""
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), mode, durable)


def read_json(path: str, default=None):
    """Read a JSON file; ``default`` when it does not exist."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default


def makedirs(path: str, mode: int = 0o700) -> str:
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration: "Less than a second", "3 minutes", "About an hour"…"""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return "%d seconds" % s
    m = int(seconds / 60)
    if m == 1:
        return "About a minute"
    if m < 60:
        return "%d minutes" % m
    h = int(round(seconds / 3600))
    if h == 1:
        return "About an hour"
    if h < 48:
        return "%d hours" % h
    if h < 24 * 7 * 2:
        return "%d days" % (h // 24)
    if h < 24 * 30 * 2:
        return "%d weeks" % (h // 24 // 7)
    if h < 24 * 365 * 2:
        return "%d months" % (h // 24 // 30)
    return "%d years" % (h // 24 // 365)
