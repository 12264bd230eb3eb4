"""``POST /build``: a build context uploaded as a chunked tar, the build's JSON stream back."""

from __future__ import annotations

import json

from .streams import json_stream


class BuildAPIMixin:
    """``/build``."""

    def build(self, context, tags=(), dockerfile=None, build_args=None, target=None, no_cache=False,
              pull=False, labels=None, quiet=False, registry_config=""):
        """Build an image with the classic builder.

        Args:
            context: the context tar: bytes, a file object, or an iterator of bytes (sent chunked).
            tags: ``name[:tag]`` references for the result (``t``, repeated).
            dockerfile: the Dockerfile's path inside the context (None: ``Dockerfile``).
            build_args: ``{name: value}``; a None value means "declared, no value".
            target: the stage to stop at.
            no_cache, pull, quiet: docker's ``nocache``, ``pull``, ``q``.
            labels: ``{name: value}`` added to the image.
            registry_config: an ``X-Registry-Config`` value (credentials for FROM pulls).
        Yields:
            The engine's JSON stream messages (``{"stream": …}``, ``{"aux": {"ID": …}}``,
            ``{"error": …, "errorDetail": …}``).
        Raises:
            APIError: the engine refused the build before streaming (bad Dockerfile, bad option).
        """
        params = [("t", t) for t in tags] + [
            ("dockerfile", dockerfile), ("buildargs", json.dumps(build_args) if build_args else None),
            ("target", target or None), ("nocache", no_cache or None), ("pull", pull or None),
            ("labels", json.dumps(labels) if labels else None), ("q", quiet or None), ("rm", True)]
        resp = self._post("/build", params=params, data=context,
                          headers=dict({"Content-Type": "application/x-tar"},
                                       **({"X-Registry-Config": registry_config} if registry_config else {})),
                          stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()
