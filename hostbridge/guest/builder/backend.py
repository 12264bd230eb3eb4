"""The narrow interface the build driver needs from the engine and the image store.

The driver (``build.py``) knows Dockerfiles; it knows nothing of overlay mounts, shims or the
image store's files. Everything it needs from them goes through one object with the methods
below. The engine implements it over the real image store and runtime (``storebackend.py``);
the build-driver tests run on that, and on a plain directory store of their own as well.

Contracts every implementation keeps:

- Image ids are ``sha256:<64 hex>``; ``image`` dicts are docker's image config JSON
  (``{"config": {...}, "author": ..., "history": [...], "rootfs": {...}, "os": ..., ...}``).
- A *rootfs* is a writable view of an image's filesystem (overlay ``merged`` over the image's
  layers, or a copy on vfs) whose changes can become one layer. It is what docker calls the
  build's intermediate container. Every rootfs the driver gets is handed back to ``release``,
  also on errors and client disconnects.
- Nothing here prints; errors are ``guest.errors.GuestError`` subclasses.
"""

from __future__ import annotations


class Rootfs:
    """A writable filesystem for one build step.

    Attributes:
        id: a 64-hex id (the intermediate container's id; the stream shows 12 digits).
        path: the host directory that shows the parent image's files; writes there are the
            step's changes.
        link_dir: None, or a directory where a file hard-linked at a path relative to ``path``
            (whose parent directory exists there) is a change of the step as if written at
            ``path`` (an overlay's upper dir): COPY then links context files instead of
            copying them.
    """

    def __init__(self, id: str, path: str, link_dir: str = None):
        self.id, self.path, self.link_dir = id, path, link_dir


class BuildBackend:
    """What the build driver calls. Subclass and implement every method."""

    def context_file_cache(self):
        """A ``filecache.FileCache`` for unpacking contexts (on the filesystem of the
        ``tmp_parent`` they are unpacked in), or None (the default): no cache."""
        return None

    def check_run_options(self, options) -> None:
        """Refuse, before the build starts, RUN options this backend cannot honour.

        Args:
            options: the build's ``runopts.RunOptions``.
        Raises:
            InvalidParameter: e.g. ``networkmode`` names no network of the engine.
        """

    def resolve_image(self, name: str, pull: bool = False):
        """Find an image for ``FROM`` or ``COPY --from``.

        Args:
            name: a reference (``busybox``, ``repo:tag``, ``name@sha256:…``) or an image id.
            pull: pull even when present (``--pull``); otherwise pull only when missing.

        Returns:
            (image_id, image) — the id and its config JSON.

        Raises:
            NotFound: no such image and it could not be pulled.
        """
        raise NotImplementedError

    def create_rootfs(self, image_id) -> Rootfs:
        """A fresh writable view of ``image_id``'s filesystem (``None``: an empty one, for
        ``FROM scratch``). Must be released with ``release``."""
        raise NotImplementedError

    def run(self, rootfs: Rootfs, config: dict, argv: list, output, cancelled=None, options=None) -> int:
        """Run ``argv`` in ``rootfs`` as a container and wait for it.

        Args:
            rootfs: from ``create_rootfs``; the process's changes land in it.
            config: the container config to run with (docker's shape): ``Env`` (already
                holding the build args), ``User``, ``WorkingDir``; no ports (the network and
                limits come from ``options``).
            argv: the full command (the shell already prepended for shell form).
            output: ``output(data: bytes, stream: int)`` called with the process's stdout (1)
                and stderr (2) as they come.
            cancelled: ``cancelled() -> bool``, or None. While the process runs, call it at
                least twice a second; once it says True (the client went away), kill the
                process, wait for it, and raise ``steps.BuildCancelled``.
            options: the build's ``runopts.RunOptions`` (network, limits, extra hosts), or None
                for the defaults; whatever the step's network held is released before returning.

        Returns:
            The exit code (128+N when killed by signal N).

        If ``output`` raises (the client went away), the process is killed, waited for, and
        the exception re-raised: an interrupted build leaves no process running.

        Raises:
            RuntimeFailure: the process could not be started (the driver reports it as
                docker does and fails the build).
        """
        raise NotImplementedError

    def commit(self, parent_id, rootfs, image: dict) -> str:
        """Store a new image.

        Args:
            parent_id: the image the step started from (None for scratch).
            rootfs: the step's rootfs whose changes become the new layer, or None for a
                config-only step (ENV, CMD…: no layer, an ``empty_layer`` history entry).
            image: the new image's config JSON, minus ``rootfs`` (the store fills
                ``rootfs.diff_ids`` from the parent and the new layer) and with the new history
                entry last. When the rootfs's changes are empty the store marks that history
                entry ``empty_layer`` and adds no diff id, as docker does.

        Returns:
            The new image id.
        """
        raise NotImplementedError

    def release(self, rootfs: Rootfs) -> None:
        """Unmount and delete a rootfs (the "Removing intermediate container" step).
        Releasing twice is not an error."""
        raise NotImplementedError

    def tag(self, image_id: str, ref: str) -> None:
        """Point ``ref`` (normalised, ``name:tag``) at ``image_id``, moving it if it exists.

        Raises:
            InvalidParameter: ``ref`` is not a valid reference.
        """
        raise NotImplementedError

    def find_image(self, ref: str):
        """``(image id, image JSON)`` of a local image, or None: never pulls (``cache_from``)."""
        raise NotImplementedError

    def restore(self, parent_id, image: dict) -> str:
        """Register ``image`` (its ``rootfs`` naming layers the store already has) as a child of
        ``parent_id``; returns its id. Used to stand in for a step from a ``cache_from`` image."""
        raise NotImplementedError

    def find_cache(self, parent_id, key: str):
        """The image a previous build made from ``parent_id`` with cache ``key``, or None.

        Returns None when that image no longer exists.
        """
        raise NotImplementedError

    def store_cache(self, parent_id, key: str, image_id: str) -> None:
        """Remember that ``parent_id`` + ``key`` produced ``image_id``."""
        raise NotImplementedError
