"""The container store: records on disk (atomically written), lookup by id, prefix or name."""

from __future__ import annotations

import os
import shutil
import threading

from ..errors import Conflict, InvalidParameter, NotFound
from ..util import makedirs, read_json, write_json

RECORD = "config.v2.json"


class Container:
    """One container: its docker-shaped record plus the live parts (lock, shim, waiters)."""

    def __init__(self, data, directory):
        self.data = data
        self.dir = directory
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.exit_generation = 0
        self.shim = None
        self.cgroup_paths = None  # {controller: dir} the shim reported, while running
        self.pending_attaches = []
        self.stop_requested = False
        self.removed = False
        self.removing = False
        self.execs = set()

    @property
    def id(self):
        return self.data["Id"]

    @property
    def name(self):
        return self.data["Name"][1:]

    @property
    def state(self):
        return self.data["State"]

    @property
    def running(self):
        return bool(self.state.get("Running"))

    @property
    def config(self):
        return self.data["Config"]

    @property
    def host_config(self):
        return self.data["HostConfig"]

    @property
    def bundle(self):
        return os.path.join(self.dir, "bundle")

    @property
    def log_path(self):
        return os.path.join(self.dir, "%s-json.log" % self.id)


class ContainerStore:
    def __init__(self, root):
        self.root = makedirs(os.path.join(root, "containers"))
        self._lock = threading.RLock()
        self._by_id = {}
        self._names = {}
        for cid in sorted(os.listdir(self.root)):
            data = read_json(os.path.join(self.root, cid, RECORD))
            if not data or data.get("Id") != cid:
                continue
            c = Container(data, os.path.join(self.root, cid))
            self._by_id[cid] = c
            self._names[c.name] = cid

    def all(self):
        with self._lock:
            return list(self._by_id.values())

    def names(self):
        with self._lock:
            return set(self._names)

    def get(self, ref) -> Container:
        """Find a container by full id, name (with or without '/'), or unique id prefix.

        Raises:
            NotFound: docker's ``No such container: REF``.
        """
        if not isinstance(ref, str) or not ref:
            raise NotFound("No such container: %s" % ref)
        with self._lock:
            c = self._by_id.get(ref)
            if c:
                return c
            cid = self._names.get(ref[1:] if ref.startswith("/") else ref)
            if cid:
                return self._by_id[cid]
            matches = [c for i, c in self._by_id.items() if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter("multiple IDs found with provided prefix: %s" % ref)
        raise NotFound("No such container: %s" % ref)

    def reserve(self, cid, name, data) -> Container:
        """Add a new container; ``name`` must be free (409 with docker's wording)."""
        with self._lock:
            other = self._names.get(name)
            if other:
                raise Conflict('Conflict. The container name "/%s" is already in use by container "%s". '
                               'You have to remove (or rename) that container to be able to reuse that name.'
                               % (name, other))
            d = makedirs(os.path.join(self.root, cid))
            c = Container(data, d)
            self._by_id[cid] = c
            self._names[name] = cid
        self.save(c)
        return c

    def rename(self, c, new):
        with self._lock:
            other = self._names.get(new)
            if other and other != c.id:
                raise Conflict('Conflict. The container name "/%s" is already in use by container "%s". '
                               'You have to remove (or rename) that container to be able to reuse that name.'
                               % (new, other))
            self._names.pop(c.name, None)
            c.data["Name"] = "/" + new
            self._names[new] = c.id
        self.save(c)

    def save(self, c):
        with c.lock:
            if not c.removed:
                write_json(os.path.join(c.dir, RECORD), c.data, 0o600)

    def remove(self, c):
        with self._lock:
            self._by_id.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                del self._names[c.name]
        c.removed = True
        shutil.rmtree(c.dir, ignore_errors=True)
