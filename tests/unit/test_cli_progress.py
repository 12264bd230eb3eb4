"""`up`'s progress lines: an updating line on a terminal, plain lines otherwise (a clock of the
test's own, ticks called by the test)."""

from hostbridge.cli.progress import StageProgress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _make(tty):
    out, clock = [], Clock()
    return StageProgress(out.append, tty=tty, clock=clock, plain_every=15, ticker=False), out, clock


def test_plain_lines_for_a_log():
    p, out, clock = _make(tty=False)
    p("boot", "booting the VM")
    clock.t += 10
    p.tick()  # under 15 s: nothing new
    clock.t += 6
    p.tick()
    p("boot", "note: no KVM; using slower emulation")
    p("image", "downloading the guest image")
    p.transfer(5 << 20, 20 << 20)  # at once: under 15 s since the stage began
    clock.t += 15
    p.transfer(10 << 20, 20 << 20)
    clock.t += 1.5
    p.close()
    assert "".join(out) == (
        "[boot] booting the VM…\n"
        "[boot] still waiting (16 s)\n"
        "[boot] note: no KVM; using slower emulation\n"
        "[boot] booting the VM… done in 16.0 s\n"
        "[image] downloading the guest image…\n"
        "[image] downloading the guest image… 10.0 MiB of 20.0 MiB (50%), 15 s\n"
        "[image] downloading the guest image… done in 16.5 s\n")


def test_one_updating_line_on_a_terminal():
    p, out, clock = _make(tty=True)
    p("ssh", "waiting for SSH")
    clock.t += 3
    p.tick()
    p.transfer(1536)
    p("engine", "starting the engine")
    p.close(ok=False)
    assert out == [
        "[ssh] waiting for SSH… 0 s",
        "\r\x1b[2K[ssh] waiting for SSH… 3 s",
        "\r\x1b[2K[ssh] waiting for SSH… 1.5 KiB, 3 s",
        "\r\x1b[2K[ssh] waiting for SSH… done in 3.0 s\n",
        "[engine] starting the engine… 0 s",
        "\n",  # a failed stage keeps its line; the error follows below it
    ]
