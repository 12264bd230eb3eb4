"""Docker's durations and times, said once for the whole engine.

- Go's ``time.ParseDuration`` and ``Duration.String``: docker parses ``--interval=1m30s`` with
  Go's parser and prints durations in history with Go's formatting (``"1m30s"``, ``"500ms"``,
  ``"0s"``); doing the same keeps our messages and ``CreatedBy`` strings identical.
- docker's ``GetTimestamp``: what ``since``/``until`` (filters, logs, events) accept: a duration
  back from now (``24h``), Unix seconds (``1700000000.5``), or an RFC 3339 time or a prefix of one
  (``2006-01-02``, ``2006-01-02T15:04``, with or without a zone).
"""

from __future__ import annotations

import re
import time

from .errors import InvalidParameter

_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10 ** 6, "s": 10 ** 9,
          "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_duration(text: str) -> int:
    """Parse a Go duration (``300ms``, ``-1.5h``, ``2h45m``) into nanoseconds.

    Raises:
        InvalidParameter: Go's message, e.g. ``time: unknown unit "x" in duration "1x"``.
    """
    s, sign = text, 1
    if s[:1] in "+-" and s:
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    if not s:
        raise InvalidParameter('time: invalid duration "%s"' % text)
    total, pos = 0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        number, unit = m.group(1), m.group(2)
        if number in ("", "."):
            raise InvalidParameter('time: invalid duration "%s"' % text)
        if not unit:
            raise InvalidParameter('time: missing unit in duration "%s"' % text)
        if unit not in _UNITS:
            raise InvalidParameter('time: unknown unit "%s" in duration "%s"' % (unit, text))
        whole, _, frac = number.partition(".")
        value = int(whole or "0") * _UNITS[unit]
        if frac:
            value += int(frac) * _UNITS[unit] // 10 ** len(frac)
        total += value
        pos = m.end()
    return sign * total


def format_duration(ns: int) -> str:
    """Format nanoseconds as Go's ``Duration.String`` does."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 10 ** 9:
        for unit, size in (("ms", 10 ** 6), ("\u00b5s", 1000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 10 ** 9)
    minutes, rest = divmod(rest, 60 * 10 ** 9)
    out = sign
    if hours:
        out += "%dh" % hours
    if hours or minutes:
        out += "%dm" % minutes
    return out + _fraction(rest, 10 ** 9) + "s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return "%d.%s" % (whole, digits)


_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
                        r"([Zz]|[+-]\d{2}:\d{2})?")
_UNIX = re.compile(r"\d+(?:\.\d{1,9})?")


def parse_timestamp(text: str, now: float | None = None) -> float:
    """A ``since``/``until`` value as Unix seconds, as docker's GetTimestamp reads it.

    Args:
        text: ``"24h"`` (that long before ``now``), ``"1700000000.5"``, ``"2006-01-02"``,
            ``"2006-01-02T15:04:05.999Z"``, ``"2006-01-02T15:04+02:00"``… (no zone: local time).
        now: the reference for durations (default: the current time).
    Raises:
        InvalidParameter: neither a time nor a duration (docker's message).
    """
    text = (text or "").strip()
    if text != "0":
        try:
            return (time.time() if now is None else now) - parse_duration(text) / 1e9
        except InvalidParameter:
            pass
    if _UNIX.fullmatch(text):
        return float(text)
    m = _TIMESTAMP.fullmatch(text)
    if not m:
        raise InvalidParameter('failed to parse value as time or duration: "%s"' % text[:80])
    import datetime  # here: a start imports this module, and datetime is a fair part of one in an emulated guest
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    if not zone:
        tz = None  # the engine's local time, as dockerd's
    elif zone in "Zz":
        tz = datetime.timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        t = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(sec or 0),
                              tzinfo=tz)
    except ValueError as e:
        raise InvalidParameter('failed to parse value as time or duration: "%s": %s' % (text[:80], e))
    return t.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
