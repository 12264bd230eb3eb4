"""The API routers' backends: one narrow object per resource, as moby's routers have.

A router calls only its backend; the backend knows nothing of HTTP (a stream is a ``send`` or a
writer it is handed) and emits the resource's events itself, so that no router reaches into the
managers or emits anything. ``Engine.backend(name)`` hands them out.
"""

from __future__ import annotations

import contextlib

# containers.fs (cp, export, diff: tar, temp mounts) is imported by those requests, not at start.
from .containers import resources
from .errors import InvalidParameter, NotFound
from .images import reference


@contextlib.contextmanager
def _naming(ref):
    """docker names the container in cp's "Could not find the file" message."""
    try:
        yield
    except NotFound as e:
        if str(e).startswith("Could not find the file") and str(e).endswith(" in container"):
            raise NotFound("%s %s" % (e, ref))
        raise


class NetworkBackend:
    """``/networks``: the network manager's operations, and the create/destroy/prune events."""

    def __init__(self, network, events):
        self._network, self._events = network, events

    def list(self, filters):
        return self._network.list(filters)

    def inspect(self, ref):
        return self._network.inspect(ref)

    def create(self, body):
        out = self._network.create_network(body)
        self._events.emit("network", "create", out["Id"], {"name": body["Name"], "type": body.get("Driver") or "bridge"})
        return out

    def remove(self, ref):
        rec = self._network.remove_network(ref)
        self._events.emit("network", "destroy", rec["Id"], {"name": rec["Name"], "type": rec["Driver"]})

    def connect(self, ref, body):
        self._network.connect(ref, body)  # the manager emits connect: it knows the container

    def disconnect(self, ref, body):
        self._network.disconnect(ref, body)

    def prune(self, filters):
        out = self._network.prune(filters)
        self._events.emit("network", "prune", "", {})
        return out


class VolumeBackend:
    """``/volumes``: the volume store with the users the container records name, and its events."""

    def __init__(self, volumes, events):
        self._volumes, self._events = volumes, events

    def list(self, filters):
        return self._volumes.store.list(filters, self._volumes.in_use())

    def inspect(self, name):
        return self._volumes.store.get(name)

    def create(self, name, driver, driver_opts, labels):
        vol, created = self._volumes.store.create(name, driver, driver_opts, labels)
        if created:
            self._events.emit("volume", "create", vol["Name"], {"driver": "local"})
        return vol

    def remove(self, name):
        self._volumes.store.remove(name, self._volumes.users(name))
        self._events.emit("volume", "destroy", name, {"driver": "local"})

    def prune(self, filters):
        out = self._volumes.store.prune(filters, self._volumes.in_use())
        self._events.emit("volume", "prune", "", {"reclaimed": str(out["SpaceReclaimed"])})
        return out


class ImageBackend:
    """``/images`` and ``/distribution``: the image store, the registry transfers, and their events."""

    def __init__(self, engine):
        self._engine = engine
        self._images = engine.images

    def list(self, all=False, filters=None):
        return self._images.list(all=all, filters=filters)

    def inspect(self, name):
        return self._images.inspect(self._images.resolve(name))

    def history(self, name):
        return self._images.history(self._images.resolve(name))

    def tag(self, name, ref):
        image_id = self._images.resolve(name)
        self._images.tag(image_id, ref)
        # the event names the tag as dockerd's does, familiar (the CLI sends docker.io/…)
        self._engine.events.emit("image", "tag", image_id, {"name": reference.parse_normalized(ref).familiar()})

    def delete(self, name, force=False, prune=True):
        return self._engine.delete_image(name, force=force, prune=prune)

    def import_rootfs(self, stream, ref, changes, message):
        return self._images.import_rootfs(stream, ref, changes, message)

    def load(self, stream):
        return self._images.load(stream)

    def save(self, names, out, begin):
        """Write the images' tar to ``out``; ``begin()`` runs once every name resolved (a 404 first)."""
        for n in names:
            self._images.resolve(n)
        begin()
        self._images.save(names, out)

    def prune(self, filters):
        return self._engine.prune_images(filters)

    def pull(self, from_image, tag, platform, auth_header, send):
        self._engine.pull(from_image, tag, platform, auth_header, send)

    def push(self, name, tag, auth_header, send):
        self._engine.push(name, tag, auth_header, send)

    def search(self, term, limit, filters, auth_header, with_tags):
        return self._engine.search(term, limit=limit, filters=filters, auth_header=auth_header, with_tags=with_tags)

    def distribution(self, name, auth_header):
        return self._engine.distribution(name, auth_header=auth_header)


class ContainerBackend:
    """``/containers`` and ``/commit``: lifecycle, streams, files and resources of containers."""

    def __init__(self, engine):
        self._engine = engine
        self._containers = engine.containers

    # ---- records and lifecycle
    def list(self, all=False, limit=-1, size=False, filters=None):
        return self._engine.list_containers(all=all, limit=limit, size=size, filters=filters)

    def inspect(self, ref, size=False):
        return self._engine.inspect_container(ref, size=size)

    def is_tty(self, ref):
        """Whether the container has a TTY (raises NotFound first: a 404 before any header)."""
        return bool(self._containers.get(ref).config.get("Tty"))

    def create(self, body, name, platform):
        return self._containers.create(body, name, platform)

    def start(self, ref):
        self._containers.start(ref)

    def stop(self, ref, timeout, signal):
        self._containers.stop(ref, timeout, signal)

    def restart(self, ref, timeout, signal):
        self._containers.restart(ref, timeout, signal)

    def kill(self, ref, signal):
        self._containers.kill(ref, signal)

    def remove(self, ref, force=False, volumes=False):
        self._containers.remove(ref, force=force, volumes=volumes)

    def remove_link(self, ref, alias):
        self._engine.network.remove_link(ref, alias)

    def rename(self, ref, name):
        self._containers.rename(ref, name)

    def resize(self, ref, h, w):
        self._containers.resize(ref, h, w)

    def prune(self, filters):
        return self._engine.prune_containers(filters)

    def wait_begin(self, ref, condition):
        """Register a wait (before the response's headers: see ContainerManager.wait_begin)."""
        return self._containers.wait_begin(ref, condition)

    def wait_end(self, handle, stop):
        return self._containers.wait_end(handle, stop=stop)

    def commit(self, ref, repo_tag, config, comment, author, changes, pause=True):
        return self._engine.commit(ref, repo_tag, config, comment, author, changes, pause)

    # ---- streams
    def logs(self, ref, **kw):
        return self._engine.logs(ref, **kw)

    def attached(self, ref):
        """Record an attach: dockerd's ``attach`` event."""
        self._containers.emit(self._containers.get(ref), "attach")

    def attach_begin(self, ref, stdin, stdout, stderr):
        return self._containers.attach_begin(self._containers.get(ref).id, stdin, stdout, stderr)

    def attach_wait(self, handle, keep_waiting):
        return self._containers.attach_wait(handle, keep_waiting=keep_waiting)

    def attach_cancel(self, handle):
        self._containers.attach_cancel(handle)

    # ---- resources
    def stats(self, ref, stream, one_shot, stop):
        return resources.stats(self._containers, self._containers.get(ref), stream=stream, one_shot=one_shot,
                               stop=stop)

    def top(self, ref, ps_args):
        c = self._containers.get(ref)
        return resources.top(self._containers, c, ps_args, hide=self._engine.execs.helper_pids(c))

    def pause(self, ref):
        resources.pause(self._containers, self._containers.get(ref))

    def unpause(self, ref):
        resources.unpause(self._containers, self._containers.get(ref))

    def update(self, ref, body):
        return resources.update(self._containers, self._containers.get(ref), body)

    # ---- files
    def changes(self, ref):
        from .containers import fs
        spec = self._containers.rootfs_spec(self._containers.get(ref))
        if spec["driver"] == "vfs":
            raise InvalidParameter("docker diff is not available with the vfs storage driver")
        return fs.changes(spec["upper"], spec["lower"][1:])

    def export(self, ref, begin):
        """Write the container's filesystem as a tar to the writer ``begin()`` returns."""
        from .containers import fs
        c = self._containers.get(ref)
        with fs.mounted_rootfs(self._containers, c) as root:
            fs.export_archive(root, begin(), self._containers.remap_of(c))
        self._containers.emit(c, "export")

    def archive_stat(self, ref, path):
        from .containers import fs
        c = self._containers.get(ref)
        with fs.mounted_rootfs(self._containers, c) as root, _naming(ref):
            return fs.path_stat(root, path)[0]

    def archive_get(self, ref, path, begin):
        """Write ``path`` as a tar to the writer ``begin(stat_header)`` returns."""
        from .containers import fs
        c = self._containers.get(ref)
        with fs.mounted_rootfs(self._containers, c) as root:
            with _naming(ref):
                header, _ = fs.path_stat(root, path)
            fs.write_archive(root, path, begin(header), self._containers.remap_of(c))

    def archive_put(self, ref, path, stream, no_overwrite_dir_non_dir=False):
        from .containers import fs
        c = self._containers.get(ref)
        with fs.mounted_rootfs(self._containers, c, writable=True) as root, _naming(ref):
            fs.check_writable(root, c, path)
            fs.extract_archive(root, path, stream, no_overwrite_dir_non_dir, self._containers.remap_of(c))
