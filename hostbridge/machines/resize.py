"""Resizing an existing VM machine, as ``podman machine set`` does: CPUs, memory and disk of a
*stopped* machine change, and take effect at its next start.

A running machine is refused (podman's rule: stop it first), the disk only grows (its
qcow2 grows with ``qemu-img resize``; the guest grows its ext4 filesystem at boot), and a
smaller disk is refused before anything is touched. ``up --cpus/--memory/--disk`` and
``config set vm.cpus|vm.memory|vm.disk`` both come here.
"""

from __future__ import annotations

import subprocess

from ..errors import MachineError, VMError

FIELDS = ("cpus", "memory_mib", "disk_gib")
WORDS = {"cpus": "CPUs", "memory_mib": "memory (MiB)", "disk_gib": "disk (GiB)"}


def plan(current: dict, cpus=None, memory_mib=None, disk_gib=None, name="") -> dict:
    """What changes: {field: (now, wanted)} for each given value that differs (pure).

    Args:
        current: the machine record's fields (``cpus``, ``memory_mib``, ``disk_gib``).
        cpus, memory_mib, disk_gib: the wanted size; None keeps the current one.
    Raises:
        MachineError: a smaller disk than now.
    """
    wanted = {"cpus": cpus, "memory_mib": memory_mib, "disk_gib": disk_gib}
    out = {}
    for key in FIELDS:
        if wanted[key] is None:
            continue
        now = int(current.get(key) or 0)
        if int(wanted[key]) != now:
            out[key] = (now, int(wanted[key]))
    if "disk_gib" in out and out["disk_gib"][1] < out["disk_gib"][0]:
        now, want = out["disk_gib"]
        raise MachineError("machine %s: the disk cannot shrink (%d GiB now, %d GiB asked)" % (name, now, want),
                           hint="give --disk %dG or more; a smaller disk needs a new machine "
                                "(`hostbridge destroy`, then `up --disk`)" % now, machine=name)
    return out


def describe(changes: dict) -> str:
    """``"CPUs 2 → 4, disk (GiB) 20 → 30"`` (pure)."""
    return ", ".join("%s %s → %s" % (WORDS[k], a, b) for k, (a, b) in changes.items())


def resize_vm(record, cpus=None, memory_mib=None, disk_gib=None) -> dict:
    """Resize vm machine ``record`` (a ``record.Machine``) while it is stopped; the caller holds
    its lock. Nothing changes when the size is already this one.

    Returns:
        The changes made ({field: (old, new)}; empty when none).
    Raises:
        MachineError: a smaller disk, or the machine is running; VMError: the driver failed.
    """
    from . import vmmode
    from .driver import NOT_CREATED, STOPPED

    changes = plan(record.fields, cpus, memory_mib, disk_gib, record.name)
    if not changes:
        return changes
    drv = vmmode.make_driver(record)
    state = drv.state()
    if state not in (STOPPED, NOT_CREATED):
        raise MachineError("machine %s is %s: its %s change only while it is stopped" % (
            record.name, state, " and ".join(WORDS[k].split(" ")[0] for k in changes)),
            hint="stop it with `hostbridge down --machine %s`, then run this again" % record.name,
            machine=record.name)
    size = {k: changes[k][1] if k in changes else int(record.fields.get(k) or 0) for k in FIELDS}
    drv.resize(**size)
    record.fields.update(size)
    record.save()
    return changes


def grow_disk(path: str, disk_gib: int) -> None:
    """Grow the qcow2 image at ``path`` to ``disk_gib`` GiB (``qemu-img resize``: it refuses to shrink).

    Raises:
        VMError: qemu-img failed or is missing.
    """
    try:
        proc = subprocess.run(["qemu-img", "resize", "-q", "-f", "qcow2", path, "%dG" % disk_gib],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise VMError("cannot run qemu-img: %s" % e, hint="install QEMU (it brings qemu-img)") from e
    if proc.returncode != 0:
        raise VMError("qemu-img resize %s failed: %s" % (path, proc.stderr.strip() or "exit %d" % proc.returncode),
                      hint="is the machine stopped? see `hostbridge status`")


__all__ = ["plan", "describe", "resize_vm", "grow_disk"]
