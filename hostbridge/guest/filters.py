"""Docker's list and prune filters, said once for the whole engine.

Every resource (containers, images, networks, volumes, build cache, events) reads its
``filters`` query through these, so that ``label!=``, ``until=24h`` or a bad name mean the same
everywhere, as they do in dockerd.
"""

from __future__ import annotations

from .durations import parse_timestamp
from .errors import InvalidParameter


def normalize(raw, allowed=None) -> dict:
    """Docker's filters in either wire form → ``{name: [values]}``.

    The CLI sends ``{"status": {"running": true}}``; older clients ``{"status": ["running"]}``.

    Args:
        raw: the decoded ``filters`` query (None or {} for none).
        allowed: the filter names this endpoint knows; None takes any (the caller checks).
    Raises:
        InvalidParameter: not an object, a value that is neither a list nor an object, or a
            name outside ``allowed`` (dockerd's ``Invalid filter 'x'``).
    """
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filter: filters must be a JSON object")
    if allowed is not None:
        check_names(raw, allowed)
    out = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            raise InvalidParameter("invalid filter '%s': values must be a list or an object" % k)
    return out


def check_names(filters, allowed) -> None:
    """Refuse a filter name this endpoint does not know.

    Raises:
        InvalidParameter: dockerd's ``Invalid filter 'x'``.
    """
    for k in filters:
        if k not in allowed:
            raise InvalidParameter("Invalid filter '%s'" % k)


def label_match(labels, wanted) -> bool:
    """Every ``key`` / ``key=value`` of ``wanted`` holds for ``labels``."""
    labels = labels or {}
    for w in wanted or ():
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def labels_match(labels, filters: dict) -> bool:
    """``label`` (all must hold) and ``label!`` (none may hold) of normalised ``filters``."""
    labels = labels or {}
    if not label_match(labels, filters.get("label")):
        return False
    return not any(label_match(labels, [w]) for w in filters.get("label!") or ())


def bool_value(name: str, values) -> bool:
    """A boolean filter (``dangling``): ``true``/``1`` or ``false``/``0``.

    Raises:
        InvalidParameter: anything else (dockerd's ``Invalid filter 'dangling=x'``).
    """
    v = values[-1].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidParameter("Invalid filter '%s=%s'" % (name, values[-1]))


def until(filters: dict, now: float | None = None):
    """The ``until`` filter as Unix seconds (``24h``, a timestamp, a date), or None if absent.

    Raises:
        InvalidParameter: a value that is neither a time nor a duration.
    """
    values = filters.get("until")
    return parse_timestamp(values[-1], now) if values else None


def created_before(created: float, filters: dict, now: float | None = None) -> bool:
    """Whether an object created at ``created`` (Unix seconds) passes ``until``: older only."""
    limit = until(filters, now)
    return limit is None or created < limit
