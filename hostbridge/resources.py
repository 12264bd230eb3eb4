"""Files hostbridge ships beside its code: ``provision/`` and the ``Vagrantfile``.

In the source tree they sit at the repository's top level. A built wheel carries them as
package data in ``hostbridge/_provision/`` (setup.py's build step copies them there). This
module is the one place that knows both layouts; everyone else asks it for a path.
"""

from __future__ import annotations

import os
from importlib import resources

from hostbridge.errors import HostbridgeError

PACKAGED = "_provision"
# The checkout: hostbridge/ sits next to provision/ and the Vagrantfile.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A file that must be in any provision directory we hand out (a check that it is the real one).
MARKER = "bootstrap.sh"


def provision_dir() -> str:
    """The directory holding provision/'s files (bootstrap.sh, the engine's unit, the guest's init…).

    Returns:
        A real directory path: the installed package's data, else the checkout's ``provision/``.
    Raises:
        HostbridgeError: neither is there (a broken install).
    """
    packaged = resources.files("hostbridge").joinpath(PACKAGED)
    if isinstance(packaged, os.PathLike) and os.path.isfile(os.path.join(os.fspath(packaged), MARKER)):
        return os.fspath(packaged)
    checkout = os.path.join(CHECKOUT, "provision")
    if os.path.isfile(os.path.join(checkout, MARKER)):
        return checkout
    raise HostbridgeError("hostbridge's provision files are missing (looked in %s and %s)"
                          % (packaged, checkout), hint="reinstall hostbridge")


def vagrantfile() -> str:
    """The Vagrantfile the vagrant driver copies into each machine (next to provision/'s files
    in a wheel, at the top of the checkout)."""
    d = provision_dir()
    packaged = os.path.join(d, "Vagrantfile")
    return packaged if os.path.isfile(packaged) else os.path.join(os.path.dirname(d), "Vagrantfile")
