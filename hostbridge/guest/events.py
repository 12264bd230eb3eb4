"""The engine's event bus: docker-shaped events, a bounded history, subscribers."""

from __future__ import annotations

import collections
import threading
import time


class Events:
    def __init__(self, history=1000):
        self._lock = threading.Condition()
        self._log = collections.deque(maxlen=history)
        self._seq = 0

    def emit(self, type_, action, actor_id, attributes=None, scope="local"):
        now = time.time_ns()
        ev = {"Type": type_, "Action": action,
              "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
              "scope": scope, "time": now // 1_000_000_000, "timeNano": now}
        if type_ == "container":
            ev["status"] = action
            ev["id"] = actor_id
            ev["from"] = (attributes or {}).get("image", "")
        with self._lock:
            self._seq += 1
            self._log.append((self._seq, ev))
            self._lock.notify_all()
        return ev

    def subscribe(self, since_ns=None, until_ns=None, stop=lambda: False, timeout=0.5):
        """Yield events (past ones from ``since_ns``, then live ones) until ``stop()`` or until."""
        with self._lock:
            past = [e for s, e in self._log if since_ns is not None and e["timeNano"] >= since_ns]
            seq = self._seq
        for ev in past:
            if until_ns and ev["timeNano"] > until_ns:
                return
            yield ev
        while not stop():
            if until_ns and time.time_ns() > until_ns:
                return
            with self._lock:
                if self._seq == seq:
                    self._lock.wait(timeout)
                new = [e for s, e in self._log if s > seq]
                seq = self._seq
            for ev in new:
                if until_ns and ev["timeNano"] > until_ns:
                    return
                yield ev
