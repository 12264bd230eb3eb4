"""The host→guest command channel on the readiness port: the host's ReadyChannel.command (qemu.py)
against the guest init's own HostPort and run_command (provision/guest-init.py), over a real unix
socket pair standing for the virtio port (the vm tier runs them through QEMU); the guest's clock
watch against a given RTC."""

import os
import socket
import threading
import time

import pytest

from hostbridge.errors import VMError
from hostbridge.machines.qemu import ReadyChannel
from tests.unit.vm.test_vm_guest_init import load_init


def _guest(init, sock, settime, stop):
    """The guest init's side: HostPort reading commands from ``sock``, replying as its main loop does."""
    port = init.HostPort()
    sock.setblocking(False)
    port.fd = sock.fileno()
    port.write("ready init")  # an event first: the host's command skips it
    while not stop.is_set() and not port.hup:
        for line in port.read_lines():
            if line:
                port.write(init.run_command(line, settime=settime))
        time.sleep(0.01)
    return port


@pytest.fixture()
def channel(tmp_path):
    """(ReadyChannel, clock settings seen by the guest, the guest thread's HostPort holder)."""
    init = load_init()
    path = str(tmp_path / "ready.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    set_to, stop, ports = [], threading.Event(), []

    def serve():
        conn, _ = server.accept()
        try:
            ports.append(_guest(init, conn, set_to.append, stop))
        finally:
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with ReadyChannel(path) as ch:
            yield ch, set_to, ports
    finally:
        stop.set()
        t.join(5)
        server.close()


def test_commands_get_their_replies_past_the_guests_events(channel):
    ch, set_to, _ = channel
    assert ch.command("clock 1796000000.250000", 5) == ""
    assert set_to == [1796000000.25]
    assert ch.command("ping", 5) == ""
    assert abs(float(ch.query("time", 5)) - time.time()) < 5  # the guest's clock, as it reads it
    with pytest.raises(VMError, match="the guest failed 'bogus': unknown command"):
        ch.query("bogus", 5)
    assert ch.command("frobnicate now", 5) == "unknown command"
    assert "could not convert" in ch.command("clock soon", 5)
    assert set_to == [1796000000.25]  # a bad time sets nothing


def test_the_guest_notices_the_host_going_away(tmp_path):
    init = load_init()
    host, guest = socket.socketpair()
    port = init.HostPort()
    guest.setblocking(False)
    port.fd = guest.fileno()
    host.sendall(b"pi")
    assert port.read_lines() == [] and not port.hup  # half a line waits for the rest
    host.sendall(b"ng\nclock 5\n")
    assert port.read_lines() == ["ping", "clock 5"]
    assert port.read_lines() == [] and not port.hup  # nothing more yet (EAGAIN)
    host.close()
    assert port.read_lines() == [] and port.hup and port.readable() is None  # left out of select()
    guest.close()


def test_no_reply_is_an_error_not_a_hang(tmp_path):
    path = str(tmp_path / "ready.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        with ReadyChannel(path) as ch:
            t0 = time.monotonic()
            with pytest.raises(VMError, match="did not answer 'prepare-suspend' in 1 s"):
                ch.command("prepare-suspend", 1)
            assert time.monotonic() - t0 < 3
    finally:
        server.close()
    with ReadyChannel(str(tmp_path / "absent.sock")) as ch:
        with pytest.raises(VMError, match="cannot be reached"):
            ch.command("ping", 1)


class RTC:
    """The RTC's whole seconds, from a settable true time (the host's)."""

    def __init__(self, true):
        self.true = true

    def __call__(self):
        return int(self.true)


def test_a_clock_left_behind_is_set_to_the_rtc_at_once_then_at_its_next_second():
    init = load_init()
    rtc = RTC(1000.3)
    guest = {"now": 1000.4}
    sets = []

    def settime(t):
        sets.append(t)
        guest["now"] = t

    watch = init.ClockWatch(rtc=rtc, now=lambda: guest["now"], settime=settime)
    assert watch.tick() == init.CLOCK_EVERY and sets == []  # in step: nothing done
    rtc.true, guest["now"] = 1030.7, 1000.9  # paused 30 s: the guest clock stood still
    assert watch.tick() == init.CLOCK_EDGE_POLL
    assert sets == [1030.5]  # within 0.5 s at once
    assert watch.tick() == init.CLOCK_EDGE_POLL and len(sets) == 1  # the same RTC second: wait for its end
    rtc.true = 1031.001
    assert watch.tick() == init.CLOCK_EVERY
    assert abs(sets[-1] - 1031.0) <= init.CLOCK_EDGE_POLL  # exact at the RTC's second boundary
    assert watch.tick() == init.CLOCK_EVERY and len(sets) == 2  # in step again


def test_a_clock_ahead_is_set_back_and_no_rtc_means_no_change():
    init = load_init()
    sets = []
    watch = init.ClockWatch(rtc=RTC(500.2), now=lambda: 503.0, settime=sets.append)
    watch.tick()
    assert sets == [500.5]
    watch = init.ClockWatch(rtc=lambda: None, now=lambda: 503.0, settime=sets.append)
    assert watch.tick() == init.CLOCK_EVERY and sets == [500.5]
    assert init.read_rtc(os.devnull) is None


def test_the_rtcs_phase_is_learnt_after_the_host_set_the_clock_and_used_after_a_jump():
    init = load_init()
    host = {"t": 2000.0}
    rtc = lambda: int(host["t"] - 0.7)  # QEMU started 0.7 s into a second: its seconds begin 0.7 s late
    guest = {"off": 0.0}  # guest clock minus host
    sets = []

    def settime(t):
        sets.append(t)
        guest["off"] = t - host["t"]

    watch = init.ClockWatch(rtc=rtc, now=lambda: host["t"] + guest["off"], settime=settime)
    watch.calibrate()  # the host's `clock` just set it right
    host["t"] = 2000.69
    assert watch.tick() == init.CLOCK_EDGE_POLL  # still the RTC's same second
    host["t"] = 2000.705  # its next second began 5 ms ago
    assert watch.tick() == init.CLOCK_EVERY
    assert abs(watch.phase - 0.7) < init.CLOCK_EDGE_POLL and sets == []
    host["t"], guest["off"] = 2030.2, -25.0  # paused 25 s
    watch.tick()
    assert abs(guest["off"]) <= 0.5  # at once: within half a second
    host["t"] = 2030.706
    watch.tick()
    assert abs(guest["off"]) <= init.CLOCK_EDGE_POLL  # at the RTC's boundary: exact, its phase counted


class _SlowGuest:
    """A driver whose guest applies a `clock` command ``delays[i]`` s after the host sent it (a
    guest busy just after a resume), then replies at once."""

    def __init__(self, delays):
        self.delays, self.set_to = list(delays), []

    def guest_command(self, line, timeout=60):
        time.sleep(self.delays.pop(0) if self.delays else 0)
        name, _, arg = line.partition(" ")
        self.set_to.append(float(arg) - time.time() if name == "clock" else name)  # clock: how far behind it lands
        return ""


def test_a_clock_command_that_arrived_late_is_sent_again():
    from hostbridge.machines import steps

    late = _SlowGuest([0.4, 0])
    assert steps.resume_by_channel(late) is True
    assert late.set_to[2] == "mount-shares"  # after the clock, sent again
    assert late.set_to[0] < -0.35 and abs(late.set_to[1]) < steps.CLOCK_ROUND_TRIP

    prompt = _SlowGuest([])
    assert steps.sync_clock(None, prompt) is None and len(prompt.set_to) == 1
    always = _SlowGuest([0.3] * steps.CLOCK_TRIES)
    assert steps.sync_clock(None, always) is None and len(always.set_to) == steps.CLOCK_TRIES  # bounded
