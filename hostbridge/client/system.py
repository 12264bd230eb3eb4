"""System endpoints: ping, version, info."""

from __future__ import annotations


class SystemAPIMixin:
    """``/_ping``, ``/version``, ``/info``."""

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
