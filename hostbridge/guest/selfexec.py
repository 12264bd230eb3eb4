"""How the engine starts another copy of itself (the shim, the exec helper).

From a zipapp: ``python3 /path/engine.pyz CMD``; from a source tree or an installed package:
``python3 -m hostbridge.guest CMD`` with the package's parent on PYTHONPATH. ``-S`` skips
site-packages: the guest needs only the standard library, and start-up time matters here.
"""

from __future__ import annotations

import os
import sys

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def argv(cmd: str) -> list:
    """The command line that runs sub-command ``cmd`` of this engine."""
    if os.path.isfile(_PKG_PARENT) and _PKG_PARENT.endswith(".pyz"):
        return [sys.executable, "-S", _PKG_PARENT, cmd]
    return [sys.executable, "-S", "-m", "hostbridge.guest", cmd]


def env(base=None) -> dict:
    """The environment for such a child: PYTHONPATH pointing at this copy of the package."""
    e = dict(os.environ if base is None else base)
    if not (os.path.isfile(_PKG_PARENT) and _PKG_PARENT.endswith(".pyz")):
        old = e.get("PYTHONPATH")
        e["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + old if old else "")
    return e
