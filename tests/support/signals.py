"""Children that are sent Ctrl-C (SIGINT) by a test."""

import signal


def sigint_default():
    """``preexec_fn`` for such a child: SIGINT at its default, so that its Python turns it into
    KeyboardInterrupt. A suite started in the background by a non-interactive shell (``cmd &``)
    inherits SIGINT ignored, and so would every CLI it starts: Ctrl-C would then do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
