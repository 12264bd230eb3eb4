"""The ``hostbridge`` command line (click), with a click-free path for the listing commands."""

from __future__ import annotations

import os
import sys


def main(argv=None):
    """Entry point of the ``hostbridge`` command.

    Args:
        argv: the arguments (``sys.argv[1:]``).
    Returns:
        The exit status (``sys.exit`` it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "_HOSTBRIDGE_COMPLETE" in os.environ:  # a shell asks for completions: click answers
        from .main import main as click_main

        return click_main(argv)
    from .fast import run

    status = run(argv)
    if status is not None:
        return status
    from .main import main as click_main

    return click_main(argv)
