"""Machine and distribution architecture names → Go's (docker's) names, said once.

``uname -m`` says ``x86_64``/``aarch64``, Debian says ``armhf``/``ppc64el``; images, manifests,
``/version`` and platforms say ``amd64``/``arm64``/``arm``, as Go's GOARCH does.
"""

from __future__ import annotations

import os

GO_ARCH = {
    "x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "armhf": "arm", "armel": "arm", "arm": "arm",
    "i386": "386", "i686": "386", "386": "386",
    "ppc64le": "ppc64le", "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def go_arch(machine: str | None = None) -> str:
    """Go's name for ``machine`` (default: this machine's ``uname -m``); unknown names as given, lower-case."""
    m = (os.uname().machine if machine is None else machine).lower()
    return GO_ARCH.get(m, m)
