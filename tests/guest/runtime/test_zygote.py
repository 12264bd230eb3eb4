"""The zygote: a pre-started shim forker that an idle engine lets go and starts again."""

import time

import pytest

from hostbridge.guest.runtime.zygote import Zygote

pytestmark = pytest.mark.root


def test_zygote_exits_when_idle_and_restarts_on_demand():
    z = Zygote(idle_seconds=0.3)
    try:
        z.prestart()
        first = z._proc
        assert first.poll() is None
        deadline = time.monotonic() + 5
        while first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() == 0  # closed by the idle reaper, exited cleanly on EOF
        z.prestart()
        assert z._proc is not first and z._proc.poll() is None
    finally:
        z.close()
