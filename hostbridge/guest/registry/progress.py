"""docker's JSON progress messages for pull and push streams.

Each message is a dict the API layer writes as one JSON line:
``{"status": "Downloading", "progressDetail": {"current": 1, "total": 2}, "progress": "[=> ] …", "id": "…"}``.
"""

from __future__ import annotations

import threading
import time

BAR_WIDTH = 50
THROTTLE = 0.1  # seconds between two progress updates of one layer (docker throttles too)


def human_size(n: float) -> str:
    """docker's ``units.HumanSize``: decimal units, 4 significant digits (``1.234MB``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return "%.4g%s" % (n, units[i])


def progress_bar(current: int, total: int) -> str:
    """``[=====>      ]  1.2MB/3.4MB`` as docker's JSONProgress renders it on a wide terminal."""
    if total <= 0:
        return "%8s" % human_size(current)
    pct = min(int(current * 100 / total) // 2, BAR_WIDTH)
    return "[%s>%s] %8s/%s" % ("=" * pct, " " * (BAR_WIDTH - pct), human_size(current), human_size(total))


def short_id(digest: str) -> str:
    """The 12 hex digits docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


class ProgressAborted(Exception):
    """The progress consumer failed (the API client went away): stop the pull or push.

    Not an OSError on purpose, so that a broken client connection is never mistaken for a
    broken registry connection and retried.
    """


class Progress:
    """Thread-safe sink for progress messages; ``callback`` may be None (messages dropped).

    Once the callback raises, every later ``emit`` raises ProgressAborted too.
    """

    def __init__(self, callback=None):
        self._cb = callback
        self._lock = threading.Lock()
        self._last = {}
        self._failed = None

    def emit(self, msg: dict) -> None:
        if self._cb is None:
            return
        with self._lock:
            if self._failed is not None:
                raise ProgressAborted(self._failed)
            try:
                self._cb(msg)
            except Exception as e:
                self._failed = "progress consumer failed: %s" % (str(e) or e.__class__.__name__)
                raise ProgressAborted(self._failed) from e

    def status(self, status: str, id: str = None, detail: bool = None) -> None:
        """A plain status line; ``detail=True`` adds docker's empty ``progressDetail``."""
        msg = {"status": status}
        if detail:
            msg["progressDetail"] = {}
        if id is not None:
            msg["id"] = id
        self.emit(msg)

    def bar(self, status: str, id: str, current: int, total: int, force: bool = False) -> None:
        """A throttled progress update (``Downloading``, ``Pushing``, ``Extracting``)."""
        now = time.monotonic()
        key = (status, id)
        if not force and now - self._last.get(key, 0) < THROTTLE and current < total:
            return
        self._last[key] = now
        self.emit({"status": status, "progressDetail": {"current": current, "total": total},
                   "progress": progress_bar(current, total), "id": id})

    def aux(self, data: dict) -> None:
        self.emit({"progressDetail": {}, "aux": data})
