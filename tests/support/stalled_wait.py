"""The real engine daemon whose wait answers stall right after their headers: a test's hook.

``python -m tests.support.stalled_wait GO_FILE PYTHON -m hostbridge.guest daemon ARGS…`` is what
``tests.support.engine.Engine(prefix=[sys.executable, "-m", "tests.support.stalled_wait", GO_FILE])``
runs. Each ``POST …/wait`` handler, once its 200 headers are out, is held until GO_FILE exists (at
most 30 s): as a thread descheduled at that point on a loaded machine is, while the client, which
has read the headers, starts the container. Nothing else differs from the daemon.
"""

import os
import sys
import time


def _hold_wait_streams(go_file):
    from hostbridge.guest.api import http

    start_stream = http.Response.start_stream

    def held(self, *args, **kwargs):
        start_stream(self, *args, **kwargs)
        if self.req.method == "POST" and self.req.path.endswith("/wait"):
            end = time.monotonic() + 30
            while not os.path.exists(go_file) and time.monotonic() < end:
                time.sleep(0.02)

    http.Response.start_stream = held


def main(argv):
    go_file, command = argv[0], argv[1:]
    if command[1:3] != ["-m", "hostbridge.guest"]:
        sys.stderr.write("stalled_wait: expected PYTHON -m hostbridge.guest …, got %r\n" % command)
        return 2
    _hold_wait_streams(go_file)
    from hostbridge.guest.__main__ import main as engine_main
    return engine_main(command[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
