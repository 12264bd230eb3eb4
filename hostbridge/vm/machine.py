"""The machine record: a named target with a mode, a driver and an engine endpoint.

Kept small on purpose: this module only reads and writes ``machine.json``. Sequencing a start
(boot → ssh → deploy → engine → tunnel → /_ping) belongs to the mode modules (``native.py``,
the VM drivers, ``remote.py``), which extend the record through ``settings``.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from .. import paths
from ..errors import MachineError

MODES = ("native", "vm", "remote")


class Machine:
    """One machine's record.

    Attributes:
        name: the machine's name (its directory under ``paths.machines_dir()``).
        mode: ``native``, ``vm`` or ``remote``.
        driver: the VM driver (``qemu``, ``vagrant``) or ``""``.
        endpoint: the local engine endpoint (``unix:///…``), ``""`` until known.
        settings: mode-specific settings (cpus, memory, ssh host, …).
    """

    def __init__(self, name, mode="native", driver="", endpoint="", settings=None):
        if mode not in MODES:
            raise MachineError("machine %r has unknown mode %r" % (name, mode), hint="one of: %s" % ", ".join(MODES),
                               machine=name)
        self.name, self.mode, self.driver, self.endpoint = name, mode, driver, endpoint
        self.settings = dict(settings or {})

    @property
    def paths(self) -> paths.MachinePaths:
        """The machine's files."""
        return paths.MachinePaths(self.name)

    def to_dict(self):
        """The JSON form stored in ``machine.json``."""
        return {"name": self.name, "mode": self.mode, "driver": self.driver, "endpoint": self.endpoint,
                "settings": self.settings}

    def save(self):
        """Write ``machine.json`` atomically (creating the machine's directory)."""
        p = self.paths
        paths.ensure_dir(p.dir)
        tmp = p.machine_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, p.machine_json)


def load(name: str) -> Optional[Machine]:
    """Read machine ``name``'s record.

    Args:
        name: the machine's name.
    Returns:
        The ``Machine``, or ``None`` when it has no record.
    Raises:
        MachineError: the record is unreadable or malformed.
    """
    try:
        path = paths.MachinePaths(name).machine_json
    except ValueError as e:
        raise MachineError(str(e), hint="machine names are plain words", machine=name)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise MachineError("cannot read %s: %s" % (path, e), hint="fix or remove that file", machine=name)
    if not isinstance(data, dict):
        raise MachineError("%s is not a JSON object" % path, hint="fix or remove that file", machine=name)
    return Machine(name, data.get("mode", "native"), data.get("driver", ""), data.get("endpoint", ""),
                   data.get("settings"))


def list_names():
    """The names of the machines that have a record, sorted."""
    try:
        entries = os.listdir(paths.machines_dir())
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if os.path.isfile(paths.MachinePaths(n).machine_json))
