"""Volume endpoints: list, create, inspect, remove, prune."""

from __future__ import annotations


class VolumeAPIMixin:
    """``/volumes/...``."""

    def volumes(self, filters=None):
        """``GET /volumes``: ``{"Volumes": [docker Volume dicts], "Warnings": [...]}``."""
        return self._json(self._get("/volumes", params={"filters": filters or None})) or {}

    def create_volume(self, name=None, driver=None, driver_opts=None, labels=None):
        """``POST /volumes/create``; creating an existing volume returns it.

        Returns:
            The docker Volume dict.
        """
        body = {"Name": name or "", "Driver": driver or "local", "DriverOpts": driver_opts or {},
                "Labels": labels or {}}
        return self._json(self._post("/volumes/create", json_body=body))

    def inspect_volume(self, name):
        """``GET /volumes/NAME``: the docker Volume dict."""
        return self._json(self._get("/volumes/{}", name))

    def remove_volume(self, name, force=False):
        """``DELETE /volumes/NAME``.

        Raises:
            NotFound: no such volume. Conflict: a container uses it.
        """
        self._delete("/volumes/{}", name, params={"force": force or None})

    def prune_volumes(self, filters=None):
        """``POST /volumes/prune``: remove unused anonymous volumes (every unused one with ``all=true``).

        Returns:
            ``{"VolumesDeleted": [names…], "SpaceReclaimed": N}``.
        """
        return self._json(self._post("/volumes/prune", params={"filters": filters or None})) or {}
