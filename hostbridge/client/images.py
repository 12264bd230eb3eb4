"""Image endpoints: list, inspect, history, tag, remove, save, load, import, prune."""

from __future__ import annotations

from .streams import json_stream


class ImageAPIMixin:
    """``/images/...``."""

    def images(self, all=False, filters=None):
        """List images (``GET /images/json``): docker ImageSummary dicts."""
        return self._json(self._get("/images/json", params={"all": all or None, "filters": filters or None}))

    def inspect_image(self, image):
        """``GET /images/NAME/json``: the docker ImageInspect dict."""
        return self._json(self._get("/images/{}/json", image))

    def history(self, image):
        """``GET /images/NAME/history``: layers, newest first."""
        return self._json(self._get("/images/{}/history", image))

    def tag(self, image, repository, tag=None):
        """Tag ``image`` as ``repository:tag``."""
        self._post("/images/{}/tag", image, params={"repo": repository, "tag": tag})

    def remove_image(self, image, force=False, noprune=False):
        """Remove an image: a list of ``{"Untagged": …}`` / ``{"Deleted": …}``."""
        return self._json(self._delete("/images/{}", image, params={"force": force, "noprune": noprune}))

    def get_images(self, names, chunk_size=1 << 20):
        """``GET /images/get``: a docker-save tar of ``names``.

        Yields:
            Chunks of the tar.
        """
        resp = self._get("/images/get", params=[("names", n) for n in names], stream=True, timeout=None)
        try:
            yield from resp.iter_content(chunk_size)
        finally:
            resp.close()

    def load_image(self, data, quiet=False):
        """``POST /images/load`` a docker-save tar.

        Args:
            data: bytes, a file object, or an iterator of bytes.
        Yields:
            The engine's JSON progress messages (``{"stream": "Loaded image: …"}``).
        """
        resp = self._post("/images/load", params={"quiet": quiet}, data=data,
                          headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()

    def import_image(self, data, repository=None, tag=None, changes=None, message=None):
        """``POST /images/create?fromSrc=-``: a rootfs tar as a one-layer image.

        Args:
            data: bytes, a file object, or an iterator of bytes (the tar).
            changes: Dockerfile instructions (``["CMD [\\"sh\\"]"]``).
        Yields:
            The engine's JSON progress messages (the last holds ``{"status": "sha256:…"}``).
        """
        params = {"fromSrc": "-", "repo": repository, "tag": tag, "message": message}
        pairs = [(k, v) for k, v in params.items()] + [("changes", c) for c in changes or ()]
        resp = self._post("/images/create", params=pairs, data=data,
                          headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()


    def prune_images(self, filters=None):
        """``POST /images/prune``: remove dangling images (every unused one with ``{"dangling": ["false"]}``).

        Returns:
            ``{"ImagesDeleted": [{"Untagged": …} | {"Deleted": …}], "SpaceReclaimed": N}``.
        """
        return self._json(self._post("/images/prune", params={"filters": filters or None})) or {}
