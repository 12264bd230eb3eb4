"""Docker's human formats: sizes, durations, IDs, commands, ports, status, and its tables.

Each function mirrors the docker CLI (go-units, cli/command/formatter) so that hostbridge's
tables read exactly like docker's against the same engine.
"""

from __future__ import annotations

import json
import re
import time

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size, base, units):
    size, i = float(size), 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def _go_g(value, precision):
    # Go's %g and C's agree except on the exponent's width (Go: at least two digits, same as C).
    return "%.*g" % (precision, value)


def human_size(size, precision=3) -> str:
    """Decimal size as docker prints it: ``1.99MB``, ``12.3kB``, ``0B`` (go-units, precision 3)."""
    value, unit = _scaled(size, 1000.0, _DECIMAL)
    return _go_g(value, precision) + unit


def bytes_size(size) -> str:
    """Binary size as ``docker info`` prints it: ``23.45GiB`` (go-units BytesSize)."""
    value, unit = _scaled(size, 1024.0, _BINARY)
    return _go_g(value, 4) + unit


def human_duration(seconds) -> str:
    """A duration as docker words it: ``Less than a second``, ``About a minute``, ``3 hours``."""
    from ..guest.util import human_duration as words  # one copy, shared with the engine's ps

    return words(seconds)


def parse_time(value):
    """An engine timestamp (RFC 3339 with nanoseconds, or UNIX seconds) → UNIX seconds, or None if unset."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    from datetime import datetime, timezone  # lazily: `ps` never parses a time

    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    if base.year <= 1:
        return None  # Go's zero time: "never"
    tz = m.group(3)
    offset = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=timezone.utc).timestamp() - offset + frac


def since(ts, now=None) -> str:
    """``2 minutes ago`` for a UNIX time or RFC 3339 string; ``""`` when unset."""
    t = parse_time(ts)
    if t is None:
        return ""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - t)) + " ago"


def short_id(ident, length=12) -> str:
    """The 12-hex short form of ``sha256:…`` or a bare ID."""
    ident = ident or ""
    if ident.startswith("sha256:"):
        ident = ident[len("sha256:"):]
    return ident[:length]


def ellipsis(text, width) -> str:
    """Cut ``text`` to ``width`` characters, its last one ``…`` when cut (docker's Ellipsis)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[:width - 1] + "…"


def go_quote(text) -> str:
    """Go's ``strconv.Quote``: double quotes, backslash escapes, printable Unicode kept."""
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") \
        .replace("\\u007f", "\\x7f")


def command(cmd, trunc=True) -> str:
    """The ps COMMAND cell: cut to 20 then quoted (``"sh -c 'exit 3'"``)."""
    cmd = cmd or ""
    return go_quote(ellipsis(cmd, 20) if trunc else cmd)


def container_status(state, now=None) -> str:
    """A container's status line from its inspect ``State`` (docker's State.String).

    Returns:
        ``Up 3 seconds``, ``Up 2 hours (Paused)``, ``Exited (0) 5 seconds ago``, ``Created``, …
    """
    now = time.time() if now is None else now

    def ago(ts):
        t = parse_time(ts)
        return human_duration(max(0.0, now - t)) if t is not None else "Less than a second"

    if state.get("Running"):
        if state.get("Paused"):
            return "Up %s (Paused)" % ago(state.get("StartedAt"))
        if state.get("Restarting"):
            return "Restarting (%d) %s ago" % (state.get("ExitCode", 0), ago(state.get("FinishedAt")))
        health = (state.get("Health") or {}).get("Status")
        if health and health != "none":
            return "Up %s (%s)" % (ago(state.get("StartedAt")), "health: starting" if health == "starting" else health)
        return "Up %s" % ago(state.get("StartedAt"))
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead"):
        return "Dead"
    if parse_time(state.get("StartedAt")) is None:
        return "Created"
    if parse_time(state.get("FinishedAt")) is None:
        return ""
    return "Exited (%d) %s ago" % (state.get("ExitCode", 0), ago(state.get("FinishedAt")))


def _join_host_port(ip, port):
    return "[%s]:%s" % (ip, port) if ":" in ip else "%s:%s" % (ip, port)


def _port_group(key, first, last):
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else "%d-%d" % (first, last)
    if ip:
        group = "%s->%s" % (_join_host_port(ip, group), group)
    return "%s/%s" % (group, proto)


def ports(port_list) -> str:
    """The ps PORTS cell, as docker's DisplayablePorts groups it.

    Unpublished and same-number ports are grouped into ranges per IP and protocol
    (``0.0.0.0:8000-8001->8000-8001/tcp``, ``53/udp``); other mappings follow, one each
    (``[::]:8080->80/tcp``).
    """
    ordered = sorted(port_list or (), key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""),
                                                      p.get("PublicPort", 0), p.get("Type", "")))
    groups, order, result, mappings = {}, [], [], []
    for p in ordered:
        current, proto, ip = p.get("PrivatePort", 0), p.get("Type", "tcp"), p.get("IP", "")
        key = proto
        if ip:
            if p.get("PublicPort", 0) != current:
                mappings.append("%s->%d/%s" % (_join_host_port(ip, p.get("PublicPort", 0)), current, proto))
                continue
            key = "%s/%s" % (ip, proto)
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            order.append(key)
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(_port_group(key, *group))
            groups[key] = [current, current]
    result += [_port_group(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def ansic(ts) -> str:
    """An RFC 3339 time as Go's ``time.ANSIC`` in local time (``Thu May  7 21:09:36 2026``)."""
    t = parse_time(ts)
    if t is None:
        return ts or ""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))


def table(rows, minwidth=10, padding=3) -> str:
    """Align cells as Go's tabwriter does for the docker CLI (minwidth 10, padding 3).

    Args:
        rows: lists of cell strings; the last cell of a row is not padded.
    Returns:
        The lines joined, each ending in ``\\n``.
    """
    widths = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "".join(line + "\n" for line in lines)


def indent_json(obj) -> str:
    """JSON indented like ``docker inspect``: 4 spaces, Unicode and ``<>&`` kept as they are."""
    return json.dumps(obj, indent=4, ensure_ascii=False)
