"""Go's ``time.ParseDuration`` and ``Duration.String``, for HEALTHCHECK's options and history.

Docker parses ``--interval=1m30s`` with Go's parser and prints durations in history with Go's
formatting (``"1m30s"``, ``"500ms"``, ``"0s"``); doing the same keeps our messages and
``CreatedBy`` strings identical.
"""

from __future__ import annotations

import re

from ..errors import InvalidParameter

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
