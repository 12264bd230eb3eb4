"""Container endpoints: create, start, stop, list, inspect, logs, attach, wait, remove."""

from __future__ import annotations

from urllib.parse import quote

from .hijack import hijack
from .streams import frames, raw_chunks


class ContainerAPIMixin:
    """``/containers/...``."""

    def containers(self, all=False, limit=None, size=False, filters=None):
        """List containers (``GET /containers/json``).

        Args:
            all: include stopped containers.
            limit: only the ``limit`` most recently created (``-n``).
            size: include SizeRw / SizeRootFs.
            filters: ``{"status": ["exited"], "label": ["a=b"]}``.
        Returns:
            A list of docker ContainerSummary dicts.
        """
        params = {"all": all or None, "limit": limit if limit and limit > 0 else None, "size": size or None,
                  "filters": filters or None}
        return self._json(self._get("/containers/json", params=params))

    def create_container(self, config, name=None, platform=None):
        """Create a container (``POST /containers/create``).

        Args:
            config: the docker ContainerConfig body (with ``HostConfig``, ``NetworkingConfig``).
            name: the container's name.
        Returns:
            ``{"Id": …, "Warnings": [...]}``.
        Raises:
            NotFound: the image does not exist.
            Conflict: the name is in use.
        """
        return self._json(self._post("/containers/create", params={"name": name, "platform": platform},
                                     json_body=config))

    def inspect_container(self, container, size=False):
        """``GET /containers/ID/json``: the docker ContainerInspect dict (with SizeRw/SizeRootFs if ``size``)."""
        return self._json(self._get("/containers/{}/json", container, params={"size": size or None}))

    def start(self, container):
        """Start a container (starting a running one is not an error)."""
        self._post("/containers/{}/start", container)

    def stop(self, container, timeout=None, signal=None):
        """Stop a container: its stop signal, then SIGKILL after ``timeout`` seconds."""
        wait = None if timeout is None else max(self.timeout, timeout + 15)
        self._post("/containers/{}/stop", container, params={"t": timeout, "signal": signal}, timeout=wait)

    def restart(self, container, timeout=None, signal=None):
        """Restart a container (stop as above, then start)."""
        wait = None if timeout is None else max(self.timeout, timeout + 15)
        self._post("/containers/{}/restart", container, params={"t": timeout, "signal": signal}, timeout=wait)

    def kill(self, container, signal=None):
        """Send ``signal`` (name or number; default SIGKILL) to a container."""
        self._post("/containers/{}/kill", container, params={"signal": signal})

    def remove_container(self, container, force=False, v=False, link=False):
        """Remove a container; ``force`` kills a running one, ``v`` removes anonymous volumes."""
        self._delete("/containers/{}", container, params={"force": force, "v": v, "link": link or None})

    def rename(self, container, name):
        """Rename a container."""
        self._post("/containers/{}/rename", container, params={"name": name})

    def wait(self, container, condition=None, timeout=None):
        """Block until the container stops (``condition``: not-running, next-exit, removed).

        Returns:
            ``{"StatusCode": N, "Error": …}``.
        """
        return self._json(self._post("/containers/{}/wait", container, params={"condition": condition},
                                     timeout=timeout))

    def logs(self, container, stdout=True, stderr=True, follow=False, tail=None, timestamps=False, since=None,
             until=None, tty=False):
        """Stream a container's logs (``GET /containers/ID/logs``).

        Args:
            tail: ``"all"`` or a number of lines.
            since, until: UNIX timestamps (the CLI converts durations and dates).
            tty: the container has a TTY, so its log stream is raw, not multiplexed.
        Yields:
            ``(stream, bytes)`` with stream 1 (stdout) or 2 (stderr).
        """
        params = {"stdout": stdout, "stderr": stderr, "follow": follow, "tail": tail, "timestamps": timestamps,
                  "since": since, "until": until}
        resp = self._get("/containers/{}/logs", container, params=params, stream=True,
                         timeout=None if follow else False)
        try:
            # read1: return what has arrived (a followed TTY log must not wait for a full buffer).
            read = getattr(resp.raw, "read1", resp.raw.read)
            yield from (raw_chunks(read) if tty else frames(read))
        finally:
            resp.close()

    def attach_socket(self, container, stdin=False, stdout=True, stderr=True, logs=False, stream=True):
        """Hijack ``POST /containers/ID/attach``: a raw two-way stream to the container's stdio.

        Returns:
            A ``HijackedSocket``; its bytes are multiplexed frames unless the container has a TTY.
        """
        params = {"stdin": "1" if stdin else "0", "stdout": "1" if stdout else "0",
                  "stderr": "1" if stderr else "0", "logs": "1" if logs else "0", "stream": "1" if stream else "0"}
        return hijack(self.endpoint, "/containers/%s/attach" % quote(container, safe=""), params)

    def pause(self, container):
        """Freeze every process of a container."""
        self._post("/containers/{}/pause", container)

    def unpause(self, container):
        """Thaw a paused container."""
        self._post("/containers/{}/unpause", container)

    def top(self, container, ps_args=None):
        """``GET /containers/ID/top``: ``{"Titles": [...], "Processes": [[...], ...]}``."""
        return self._json(self._get("/containers/{}/top", container, params={"ps_args": ps_args}))

    def resize(self, container, height, width):
        """Resize a container's TTY."""
        self._post("/containers/{}/resize", container, params={"h": height, "w": width})

    def wait_later(self, container, condition=None):
        """Send ``POST /containers/ID/wait`` now; ``.json()`` on the result blocks for the reply.

        Returns:
            A ``hijack.PendingResponse``.
        """
        from .hijack import send_request

        return send_request(self.endpoint, "POST", "/containers/%s/wait" % quote(container, safe=""),
                            {"condition": condition} if condition else None)
