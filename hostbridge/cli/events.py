"""``events``: the engine's events as docker prints them, live or between ``--since`` and ``--until``."""

from __future__ import annotations

import time

import click

from .options import parse_filters, parse_timestamp

# Go's events.Message field order, which ``{{json .}}`` keeps.
_MESSAGE_KEYS = ("status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano")
_OMITEMPTY = ("status", "id", "from", "time", "timeNano")


def rfc3339_nano(time_nano):
    """Go's RFC3339NanoFixed in local time: ``2026-11-28T07:22:15.415096494Z`` (or ``+01:00``)."""
    seconds, nanos = divmod(int(time_nano), 1_000_000_000)
    t = time.localtime(seconds)
    offset = t.tm_gmtoff or 0
    zone = "Z" if offset == 0 else "%s%02d:%02d" % ("+" if offset > 0 else "-", abs(offset) // 3600,
                                                   abs(offset) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%09d" % nanos + zone


def event_line(ev):
    """docker's default line: ``TIME TYPE ACTION ID (key=value, …)`` with attributes sorted by key."""
    stamp = ev.get("timeNano") or (ev.get("time") or 0) * 1_000_000_000
    actor = ev.get("Actor") or {}
    line = "%s%s %s %s" % (rfc3339_nano(stamp) + " " if stamp else "", ev.get("Type", ""), ev.get("Action", ""),
                           actor.get("ID", ""))
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (%s)" % ", ".join("%s=%s" % (k, attrs[k]) for k in sorted(attrs))
    return line


def go_ordered(ev):
    """The message as Go marshals it: its field order, attributes sorted, empty ``omitempty`` fields dropped."""
    out = {k: ev[k] for k in _MESSAGE_KEYS if k in ev and not (k in _OMITEMPTY and not ev[k])}
    if isinstance(out.get("Actor"), dict):
        actor = out["Actor"]
        out["Actor"] = {"ID": actor.get("ID", "")}
        if actor.get("Attributes") is not None:
            out["Actor"]["Attributes"] = dict(sorted(actor["Attributes"].items()))
    out.update((k, v) for k, v in ev.items() if k not in _MESSAGE_KEYS)
    return out


@click.command()
@click.option("--since", help="Show all events created since timestamp (or a duration like 10m).")
@click.option("--until", help="Stream events until this timestamp (or a duration like 10m).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions (type=container).")
@click.option("--format", "format_", help="Format the output using a Go template subset, or 'json'.")
@click.pass_obj
def events(app, since, until, filters, format_):
    """Get real time events from the server."""
    from .template import Template

    tpl = Template("{{json .}}" if format_ == "json" else format_) if format_ else None
    stream = app.client.events(parse_timestamp(since), parse_timestamp(until), parse_filters(filters))
    for ev in stream:
        app.out(tpl.render(go_ordered(ev)) if tpl else event_line(ev))
