"""The machine record (``machine.json``): a named target with a mode, a driver and an endpoint.

The mode modules (``native.py``, ``vmmode.py``, ``remote.py``) keep their own fields in it, and
fields this module does not know are read and written back untouched. Kept apart from
``machine.py``'s sequencing (and its imports) because every command reads a record to find its
engine: ``hostbridge ps`` must not pay for logging, dataclasses and shutil.
"""

from __future__ import annotations

import json
import os

from .. import paths
from ..errors import MachineError

MODES = ("native", "vm", "remote")


class Machine:
    """One machine's record.

    Attributes:
        name: the machine's name (its directory under ``paths.machines_dir()``).
        mode: ``native``, ``vm`` or ``remote``.
        driver: the VM driver (``qemu``, ``vagrant``) or ``""``.
        endpoint_url: the local engine endpoint (``unix:///…``, ``npipe:////./pipe/…``), ``""``
            until known.
        fields: every other field of the record (mode-specific), kept as found.
    """

    def __init__(self, name, mode="native", driver="", endpoint_url="", fields=None):
        if mode not in MODES:
            raise MachineError("machine %r has unknown mode %r" % (name, mode), hint="one of: %s" % ", ".join(MODES),
                               machine=name)
        self.name, self.mode, self.driver, self.endpoint_url = name, mode, driver, endpoint_url
        self.fields = dict(fields or {})

    @property
    def paths(self) -> paths.MachinePaths:
        """The machine's files."""
        return paths.MachinePaths(self.name)

    def to_dict(self):
        """The JSON form stored in ``machine.json``."""
        return dict(self.fields, name=self.name, mode=self.mode, driver=self.driver, endpoint_url=self.endpoint_url)

    @classmethod
    def from_dict(cls, name, data):
        """Build from a ``machine.json`` object (``endpoint`` holding a URL is read as ``endpoint_url``)."""
        url = data.get("endpoint_url") or ""
        legacy = data.get("endpoint")
        if not url and isinstance(legacy, str) and "://" in legacy:
            url = legacy
        known = ("name", "mode", "driver", "endpoint_url")
        return cls(name, data.get("mode", "native"), data.get("driver") or "", url,
                   {k: v for k, v in data.items() if k not in known})

    def save(self, where=None):
        """Write ``machine.json`` atomically (creating the machine's directory).

        Args:
            where: the ``paths.MachinePaths`` to write in (default: ``self.paths``).
        """
        p = where or self.paths
        paths.ensure_dir(p.dir)
        tmp = p.machine_json + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it names keys and hosts: owner only
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, p.machine_json)


def load(name: str) -> Machine | None:
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
    return Machine.from_dict(name, data)


def list_names():
    """The names of the machines that have a record, sorted."""
    try:
        entries = os.listdir(paths.machines_dir())
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if os.path.isfile(paths.MachinePaths(n).machine_json))


def lock(name: str):
    """An exclusive lock on machine ``name`` (its ``up.lock``), held while it is changed.

    Returns:
        A context manager; entering blocks until other ``up``/``down``/``destroy`` calls finish.
    """
    return _Lock(paths.MachinePaths(name).up_lock)


class _Lock:
    def __init__(self, path):
        self.path, self.fd = path, None

    def busy(self) -> bool:
        """Whether another process holds the lock now (without taking it)."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; machines are changed one command at a time there
            return False
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def __enter__(self):
        paths.ensure_dir(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
