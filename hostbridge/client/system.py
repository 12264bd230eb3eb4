"""System endpoints: ping, version, info, events, disk usage."""

from __future__ import annotations

from .streams import json_stream


class SystemAPIMixin:
    """``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``."""

    def ping(self, timeout=False):
        """``GET /_ping``: True when the engine answers OK.

        Raises:
            EngineUnreachable: nothing answers.
        """
        return self._get("/_ping", timeout=timeout).text.strip() == "OK"

    def version(self):
        """``GET /version``: the docker SystemVersion dict."""
        return self._json(self._get("/version"))

    def info(self):
        """``GET /info``: the docker SystemInfo dict."""
        return self._json(self._get("/info"))

    def events(self, since=None, until=None, filters=None):
        """``GET /events``: engine events as they happen (the stream ends at ``until`` if given).

        Args:
            since, until: UNIX timestamps as strings (the CLI converts durations and dates).
            filters: ``{"type": ["container"], "event": ["start"]}``.
        Yields:
            docker's event messages (``{"Type", "Action", "Actor": {"ID", "Attributes"}, "time", "timeNano"}``).
        """
        resp = self._get("/events", params={"since": since, "until": until, "filters": filters or None},
                         stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()

    def df(self):
        """``GET /system/df``: ``{"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}``."""
        return self._json(self._get("/system/df"))
