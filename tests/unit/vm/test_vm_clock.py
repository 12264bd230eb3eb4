"""Clock resync logic against a simulated guest clock (the vm tier checks a real guest)."""

import re
import subprocess

import pytest

from hostbridge.errors import VMError
from hostbridge.machines import clock


class Guest:
    """A guest whose clock is ``offset`` s off the host's and whose commands take ``delay`` s."""

    def __init__(self, offset, delay=0.01, fail_set=False):
        self.host = 1000.0
        self.offset, self.delay, self.fail_set = offset, delay, fail_set
        self.commands = []

    def now(self):
        return self.host

    def run(self, cmd):
        self.commands.append(cmd)
        self.host += self.delay / 2
        if cmd.startswith("date +%s.%N"):
            out = (0, "%.6f\n" % (self.host + self.offset), "")
        elif "date -u -s" in cmd:
            if self.fail_set:
                out = (1, "", "date: cannot set date: Operation not permitted")
            else:
                self.offset += float(re.search(r"now \+ (-?[0-9.]+)", cmd).group(1))
                out = (0, "", "")
        else:
            out = (127, "", "unknown")
        self.host += self.delay / 2
        return out


def test_small_drift_is_left_alone():
    g = Guest(offset=0.4)
    check = clock.resync(g.run, g.now)
    assert not check.adjusted and check.drift == pytest.approx(0.4, abs=0.01)
    assert len(g.commands) == 1


def test_drift_over_a_second_sets_the_guest_clock():
    g = Guest(offset=-3600.0, delay=0.2)
    check = clock.resync(g.run, g.now)
    assert check.adjusted and check.drift == pytest.approx(-3600, abs=0.01)
    assert check.round_trip == pytest.approx(0.2)
    assert abs(clock.guest_drift(g.run, g.now)[0]) < 0.05


def test_sudo_prefix_for_non_root_users():
    g = Guest(offset=5)
    clock.resync(g.run, g.now, sudo="sudo -n ")
    assert "sudo -n date -u -s " in g.commands[-1]


def test_correction_command_computes_from_the_guest_clock_itself():
    # Run the command's arithmetic with this host's sh and awk, the date setting left out.
    cmd = clock.correction_command(-3600.5).replace("date -u -s ", "echo ").replace(">/dev/null", "")
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()
    import time
    assert out.startswith("@") and float(out[1:]) == pytest.approx(time.time() - 3600.5, abs=2)


def _run_correction(cmd):
    cmd = cmd.replace("date -u -s ", "echo ").replace(">/dev/null", "")
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()


def test_a_correction_moves_nothing_when_the_guest_clock_moved_since_it_was_read():
    import time

    now = time.time()
    # Read 300 s behind, then set right by the guest itself (its RTC watch): +300 on top is refused.
    assert _run_correction(clock.correction_command(300.0, read_at=now - 300)) == ""
    assert _run_correction(clock.correction_command(-5.0, read_at=now + 60)) == ""  # read in the future
    out = _run_correction(clock.correction_command(300.0, read_at=now))  # still where it was read
    assert float(out[1:]) == pytest.approx(time.time() + 300, abs=2)


def test_failures_are_errors():
    with pytest.raises(VMError, match="setting the guest clock failed: date: cannot set"):
        g = Guest(offset=5, fail_set=True)
        clock.resync(g.run, g.now)
    with pytest.raises(VMError, match="not a time"):
        clock.resync(lambda cmd: (0, "Thu Jan 1\n", ""))
    with pytest.raises(VMError, match="reading the guest clock failed"):
        clock.resync(lambda cmd: (127, "", "sh: date: not found"))
