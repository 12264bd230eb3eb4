"""The VM drivers by name: the one module that imports ``qemu.py`` and ``vagrant.py``.

Kept out of ``driver.py`` (the interface both drivers import), so that no import circle joins
the interface and its implementations.
"""

from __future__ import annotations

from hostbridge.errors import VMError


def make_driver(name, spec, **kwargs):
    """The driver called ``name`` for ``spec``.

    Args:
        name: "qemu" or "vagrant".
        spec: a ``driver.MachineSpec``.
        kwargs: passed to the driver's constructor.
    Returns:
        A ``QemuDriver`` or ``VagrantDriver`` (no I/O done yet).
    Raises:
        VMError: no such VM driver ("native" is not a VM: ``modes.py`` handles it).
    """
    if name == "qemu":
        from hostbridge.machines.qemu import QemuDriver

        return QemuDriver(spec, **kwargs)
    if name == "vagrant":
        from hostbridge.machines.vagrant import VagrantDriver

        return VagrantDriver(spec, **kwargs)
    raise VMError("%r is not a VM driver" % name, hint="use --driver qemu or --driver vagrant")
