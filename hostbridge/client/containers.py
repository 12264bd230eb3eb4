"""Container endpoints: create, start, stop, list, inspect, logs, attach, wait, remove, stats, changes,
export, update, prune, commit, and the archive (``cp``) endpoints."""

from __future__ import annotations


from .hijack import hijack
from .transport import quote
from .streams import frames, json_stream, raw_chunks


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
        return hijack(self.endpoint, "/containers/%s/attach" % quote(container), params)

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
        """Send ``POST /containers/ID/wait`` now and return once the engine has registered it (the
        reply's head: a start may follow); ``.json()`` on the result blocks for the reply.

        Returns:
            A ``hijack.PendingResponse``.
        """
        from .hijack import send_request

        return send_request(self.endpoint, "POST", "/containers/%s/wait" % quote(container),
                            {"condition": condition} if condition else None)

    def stats(self, container, stream=True):
        """``GET /containers/ID/stats``: docker's stats JSON, with ``precpu_stats`` for the CPU delta.

        Args:
            stream: keep sampling (about once a second) until the caller stops iterating.
        Yields:
            One stats dict per sample (exactly one when ``stream`` is false).
        """
        if not stream:
            yield self._json(self._get("/containers/{}/stats", container, params={"stream": False}))
            return
        resp = self._get("/containers/{}/stats", container, params={"stream": True}, stream=True, timeout=None)
        try:
            yield from json_stream(resp.iter_content(None))
        finally:
            resp.close()

    def changes(self, container):
        """``GET /containers/ID/changes``: ``[{"Path": "/tmp/x", "Kind": 0|1|2}, …]`` (modified, added, deleted)."""
        return self._json(self._get("/containers/{}/changes", container)) or []

    def export(self, container, chunk_size=1 << 20):
        """``GET /containers/ID/export``: the container's filesystem as a tar.

        Yields:
            Chunks of the tar.
        """
        resp = self._get("/containers/{}/export", container, stream=True, timeout=None)
        try:
            yield from resp.iter_content(chunk_size)
        finally:
            resp.close()

    def update_container(self, container, resources):
        """``POST /containers/ID/update`` with docker's Resources/RestartPolicy body.

        Returns:
            ``{"Warnings": [...]}``.
        """
        return self._json(self._post("/containers/{}/update", container, json_body=resources)) or {}

    def prune_containers(self, filters=None):
        """``POST /containers/prune``: remove stopped containers.

        Returns:
            ``{"ContainersDeleted": [...], "SpaceReclaimed": N}``.
        """
        return self._json(self._post("/containers/prune", params={"filters": filters or None})) or {}

    def commit(self, container, repository=None, tag=None, message=None, author=None, changes=None, pause=True,
               config=None):
        """``POST /commit``: a new image from a container's changes.

        Args:
            changes: Dockerfile instructions (``["CMD [\\"sh\\"]"]``).
            config: a ContainerConfig to merge into the image's.
        Returns:
            ``{"Id": "sha256:…"}``.
        """
        params = [("container", container), ("repo", repository), ("tag", tag), ("comment", message),
                  ("author", author), ("pause", pause)] + [("changes", c) for c in changes or ()]
        return self._json(self._post("/commit", params=params, json_body=config or {}))

    def stat_path(self, container, path):
        """``HEAD /containers/ID/archive``: the path's stat (``name size mode mtime linkTarget``).

        Raises:
            NotFound: no such container, or no such path in it.
        """
        resp = self._request("HEAD", "/containers/{}/archive", container, params={"path": path})
        return decode_path_stat(resp.headers.get("X-Docker-Container-Path-Stat"))

    def get_archive(self, container, path, chunk_size=1 << 20):
        """``GET /containers/ID/archive``: a tar of ``path`` (its last element at the tar's root).

        Returns:
            ``(stat, chunks)``: the path's stat dict and an iterator of the tar's bytes.
        """
        resp = self._get("/containers/{}/archive", container, params={"path": path}, stream=True, timeout=None)

        def chunks():
            try:
                yield from resp.iter_content(chunk_size)
            finally:
                resp.close()

        return decode_path_stat(resp.headers.get("X-Docker-Container-Path-Stat")), chunks()

    def put_archive(self, container, path, data, no_overwrite_dir_non_dir=True, copy_uidgid=False):
        """``PUT /containers/ID/archive``: extract a tar into the directory ``path``.

        Args:
            data: the tar (bytes, a file, or an iterator of bytes).
            no_overwrite_dir_non_dir: refuse to replace a directory by a file or the reverse.
        """
        self._request("PUT", "/containers/{}/archive", container, data=data, timeout=None,
                      params={"path": path, "noOverwriteDirNonDir": no_overwrite_dir_non_dir,
                              "copyUIDGID": copy_uidgid or None},
                      headers={"Content-Type": "application/x-tar"})


def decode_path_stat(header):
    """Decode ``X-Docker-Container-Path-Stat`` (base64 JSON) → a dict (``{}`` when absent)."""
    if not header:
        return {}
    import base64
    import json

    try:
        return json.loads(base64.b64decode(header))
    except ValueError:
        return {}
