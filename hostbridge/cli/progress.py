"""`up`'s progress on stderr, fed by the machine code's callbacks: the stage, the seconds it has
been waiting, and a download's bytes.

On a terminal one line is redrawn in place every second (``[boot] booting the VM… 12 s``); a
finished stage keeps its line with ``done in 12.3 s``. Elsewhere (a log, CI) plain lines are
printed: the stage when it starts, ``still waiting (30 s)`` every ``plain_every`` seconds,
download figures at most every ``plain_every`` seconds, and ``done in …`` when it ends.

The machine code calls ``progress(stage, text)`` once per stage (a text starting with
``note:`` is a note, not a stage) and, while it downloads, ``progress.transfer(done, total)``.
"""

from __future__ import annotations

import threading
import time


def _size(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%d B" % n  # not reached


class StageProgress:
    """A ``(stage, text)`` callback that shows elapsed seconds and bytes.

    Args:
        write: writes text to the stream (no newline added).
        tty: redraw one line in place (a terminal) or print plain lines.
        clock: seconds, monotonic (tests give their own).
        interval: seconds between redraws on a terminal.
        plain_every: seconds between "still waiting" lines when not on a terminal.
        ticker: run a thread that calls ``tick()`` every ``interval`` (tests call it themselves).
    """

    def __init__(self, write, tty, clock=time.monotonic, interval=1.0, plain_every=15.0, ticker=True):
        self.write, self.tty, self.clock = write, tty, clock
        self.interval, self.plain_every = interval, plain_every
        self.stage = self.text = None
        self.started = self.last_plain = 0.0
        self.done = self.total = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if ticker:
            self._thread = threading.Thread(target=self._run, name="up-progress", daemon=True)
            self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            self.tick()

    def line(self) -> str:
        """The current stage's line (no newline)."""
        elapsed = self.clock() - self.started
        figure = "%d s" % elapsed
        if self.done is not None:
            got = _size(self.done)
            if self.total:
                got += " of %s (%d%%)" % (_size(self.total), 100 * self.done // self.total)
            figure = "%s, %s" % (got, figure)
        return "[%s] %s… %s" % (self.stage, self.text, figure)

    def _finish(self):
        if self.stage is None:
            return
        took = "[%s] %s… done in %.1f s" % (self.stage, self.text, self.clock() - self.started)
        if self.tty:
            self.write("\r\x1b[2K" + took + "\n")
        else:
            self.write(took + "\n")
        self.stage = None

    def __call__(self, stage, text):
        with self._lock:
            if text.startswith("note:"):
                if self.tty and self.stage is not None:
                    self.write("\r\x1b[2K[%s] %s\n" % (stage, text))
                    self.write(self.line())
                else:
                    self.write("[%s] %s\n" % (stage, text))
                return
            self._finish()
            self.stage, self.text = stage, text
            self.started = self.last_plain = self.clock()
            self.done = self.total = None
            self.write(self.line() if self.tty else "[%s] %s…\n" % (stage, text))

    def transfer(self, done, total=None):
        """Bytes downloaded so far in the current stage (and the total, when known)."""
        with self._lock:
            self.done, self.total = done, total
        self.tick()

    def tick(self):
        """Redraw the line (terminal), or print a plain line when ``plain_every`` has passed."""
        with self._lock:
            if self.stage is None:
                return
            if self.tty:
                self.write("\r\x1b[2K" + self.line())
                return
            now = self.clock()
            if now - self.last_plain < self.plain_every:
                return
            self.last_plain = now
            if self.done is not None:
                self.write(self.line() + "\n")
            else:
                self.write("[%s] still waiting (%d s)\n" % (self.stage, now - self.started))

    def close(self, ok=True):
        """Stop redrawing; end the last stage's line (``done in`` only when it succeeded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            if ok:
                self._finish()
            elif self.stage is not None:
                if self.tty:
                    self.write("\n")
                self.stage = None


__all__ = ["StageProgress"]
