"""The one staged sequencer of every machine mode: named stages, cleanup on failure, and the
persisted ``starting`` state that lets the next command see a start that crashed.

``machines/machine.py`` (a VM's ``up``) and ``machines/remote.py`` (``remote add``) run their steps through
a ``Stages``: each step has a name, so an error says which one failed (``StageFailed``) with
that stage's hint, and the callbacks registered with ``on_failure`` undo what was started, in
reverse order. Nothing here prints: ``progress(stage, text)`` is the caller's.
"""

from __future__ import annotations

import logging
import os
import time

from ..errors import MachineError

log = logging.getLogger(__name__)

# Stored in machine.json's "state" while a start runs; with a dead "up_pid" it is a start that
# crashed or was killed.
STARTING = "starting"


class StageFailed(MachineError):
    """A sequence stopped at a named stage; ``cause`` is the error that stopped it.

    The message reads "machine NAME: ACTION failed at the STAGE stage: what the cause said";
    the hint is the cause's own, else the stage's (``hint_first`` prefers the stage's).
    """

    def __init__(self, name, stage, cause, hint=None, action="`up`", hint_first=False):
        what = getattr(cause, "message", "") or str(cause) or type(cause).__name__
        prefix = "machine %s: " % name
        what = what[len(prefix):] if what.startswith(prefix) else what
        own = getattr(cause, "hint", None)
        chosen = (hint or own) if hint_first else (own or hint)
        super().__init__("machine %s: %s failed at the %s stage: %s" % (name, action, stage, what), hint=chosen,
                         machine=name, stage=stage)
        self.cause = cause


def noop(stage, text):
    """A ``progress`` callback that shows nothing."""


class Stages:
    """Runs one start of machine ``name`` as named stages.

    Args:
        name: the machine.
        table: stage name → (progress text, hint when it fails; ``NAME`` is replaced by the
            machine's name). Every stage run must be in it.
        progress: ``(stage, text)`` callback, called once when a stage starts (a stage run in
            several steps, one after the other, reports once).
        action: how the error names what failed ("`up`", "`remote add`").
        error: ``(name, stage, cause) -> StageFailed`` for a mode's own error (default:
            ``StageFailed`` with the table's hint and ``action``).

    Attributes:
        timings: [(stage, seconds)] in order.
        current: the stage running, or that failed last ("" before the first).
    """

    def __init__(self, name, table, progress=None, action="`up`", error=None):
        self.name, self.table, self.progress, self.action = name, table, progress or noop, action
        self.error = error
        self.timings = []
        self.current = ""
        self._undo = []

    def run(self, stage, fn, *args, **kw):
        """Run ``fn(*args, **kw)`` as (a step of) ``stage``.

        Returns:
            What ``fn`` returned.
        Raises:
            StageFailed: ``fn`` raised an Exception (its message quoted, the stage named).
            KeyError: ``stage`` is not in the table (a programming error).
        """
        text, hint = self.table[stage]
        if not self.timings or self.timings[-1][0] != stage:
            self.progress(stage, text)
        self.current = stage
        t0 = time.monotonic()
        try:
            return fn(*args, **kw)
        except StageFailed:
            raise
        except Exception as e:  # ours, OSError, paramiko's SSHException…: the stage failed, in its words
            raise self.failed(stage, e) from e
        finally:
            spent = time.monotonic() - t0
            if self.timings and self.timings[-1][0] == stage:
                self.timings[-1] = (stage, self.timings[-1][1] + spent)
            else:
                self.timings.append((stage, spent))

    def failed(self, stage, cause) -> StageFailed:
        """The error for ``stage`` failing with ``cause`` (for a check that fails without raising)."""
        if self.error is not None:
            return self.error(self.name, stage, cause)
        return StageFailed(self.name, stage, cause, hint=self.table[stage][1].replace("NAME", self.name),
                           action=self.action)

    def on_failure(self, fn, *args, **kw):
        """Register ``fn(*args, **kw)`` to undo a step if the sequence fails (run last-first)."""
        self._undo.append((fn, args, kw))

    def cleanup(self):
        """Run the failure callbacks, last registered first, once. Best effort: the error that
        stopped the sequence is the one to report, so a failing callback is only logged."""
        undo, self._undo = self._undo, []
        for fn, args, kw in reversed(undo):
            try:
                fn(*args, **kw)
            except Exception as e:
                log.warning("cleanup after a failed start of %s: %s failed: %s", self.name,
                            getattr(fn, "__name__", fn), e)


def mark_starting(record) -> bool:
    """Persist ``state: starting`` with this process's pid in ``record`` (call under its lock).

    Returns:
        Whether the record already said ``starting``: a start that died (the caller holds the
        lock, so that start is gone) left it, and its leftovers are to be cleared.
    """
    crashed = record.fields.get("state") == STARTING
    record.fields.update(state=STARTING, up_pid=os.getpid())
    record.save()
    return crashed


def mark_done(record, state):
    """Persist the state a start (or its cleanup) ended in, clearing ``up_pid``."""
    record.fields.update(state=state, up_pid=None)
    record.save()
