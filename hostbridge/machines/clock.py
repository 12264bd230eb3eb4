"""Guest clock resync: after the host sleeps, a VM's clock lags (every VM launcher's classic).

The logic needs only a way to run a command in the guest (an SSH exec), so it is the same for
every driver and testable without a VM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Tuple

from hostbridge.errors import VMError

# (command) -> (exit status, stdout, stderr)
Exec = Callable[[str], Tuple[int, str, str]]
THRESHOLD = 1.0


@dataclass(frozen=True)
class ClockCheck:
    """What a resync saw and did. ``drift`` is guest minus host, in seconds."""

    drift: float
    round_trip: float
    adjusted: bool


def guest_drift(run: Exec, now=time.time):
    """Measure guest time minus host time, taking the host time at the middle of the round trip.

    Returns:
        (drift, round_trip) in seconds.
    Raises:
        VMError: the guest's ``date`` failed or printed something else than a number.
    """
    guest, before, after = _read_guest(run, now)
    return guest - (before + after) / 2, after - before


def _read_guest(run: Exec, now):
    """(the guest clock, the host clock before asking, after the answer)."""
    before = now()
    status, out, err = run("date +%s.%N")
    after = now()
    if status != 0:
        raise VMError("reading the guest clock failed: %s" % (err.strip() or "exit status %d" % status))
    try:
        return float(out.strip()), before, after
    except ValueError as e:
        raise VMError("the guest clock printed %r, not a time" % out.strip()[:40]) from e


def correction_command(seconds, sudo="", read_at=None):
    """A guest command moving its clock by ``seconds``, computed from the guest's own clock when
    it runs: the SSH round trip of this command (slow under emulation) adds no error.

    ``read_at`` (the guest clock as last read): the command moves nothing when the guest clock is
    no longer where that reading leads (before it, or more than max(1 s, min(30 s, |seconds|/2))
    after it): someone else set it meanwhile (the QEMU guest init sets its clock back to the RTC's
    after a jump), and a correction on top would move it off by as much again.
    """
    check = ""
    if read_at is not None:
        check = "if (now < %.6f || now > %.6f) exit; " % (read_at - 0.5, read_at + max(1.0, min(30.0, abs(seconds) / 2)))
    return ("t=\"$(awk -v now=\"$(date +%%s.%%N)\" 'BEGIN {%sprintf \"%%.6f\", now + %.6f}')\"; "
            "[ -z \"$t\" ] || %sdate -u -s \"@$t\" >/dev/null" % (check, seconds, sudo))


def resync(run: Exec, now=time.time, threshold=THRESHOLD, sudo=""):
    """Set the guest clock to the host's when they differ by more than ``threshold`` seconds.

    Args:
        run: runs a shell command in the guest.
        now: the host clock.
        threshold: tolerated drift in seconds.
        sudo: prefix for the ``date -s`` command when the SSH user is not root ("sudo -n ").
    Returns:
        A ClockCheck.
    Raises:
        VMError: the guest clock could not be read or set.
    """
    guest, before, after = _read_guest(run, now)
    drift, rtt = guest - (before + after) / 2, after - before
    if abs(drift) <= threshold:
        return ClockCheck(drift, rtt, False)
    status, _, err = run(correction_command(-drift, sudo, read_at=guest))
    if status != 0:
        raise VMError("setting the guest clock failed: %s" % (err.strip() or "exit status %d" % status),
                      hint="the SSH user needs root or passwordless sudo")
    return ClockCheck(drift, rtt, True)


def resync_ssh(conn, threshold=THRESHOLD):
    """``resync`` over an SSH connection (``tunnel.ssh.Connection``); sudo when its user is not root.

    Returns:
        A ClockCheck.
    Raises:
        VMError: the guest clock could not be read or set.
    """

    def run(cmd):
        rc, out, err = conn.run(cmd, timeout=30)
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    return resync(run, threshold=threshold, sudo="" if conn.target.user == "root" else "sudo -n ")
