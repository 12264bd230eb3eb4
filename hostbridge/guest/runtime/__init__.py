"""The container runtime: a bundle (config.json) in, a supervised container out.

Knows nothing of HTTP or images (docs/internals.md, "Runtime bundle and shim").
- ``client.ShimClient``: the engine's handle (spawn, start, wait, attach, resize, kill, state).
- ``shim`` / ``supervisor``: the per-container daemon and its event loop.
- ``container``: the forked child that becomes pid 1 (or a small init); ``initbin``: the
  static init binary (tini) of ``--init``, found on the host and bound at /sbin/docker-init.
- ``rootfs``, ``process``, ``caps``, ``ns``: mounts, identity and exec, capabilities, syscalls.
- ``cgroups`` (+ ``devices`` for v2 device rules): limits, stats, freeze, OOM, removal.
- ``execproc``: ``exec`` into a running container; ``logs``: json-file lines and stream frames.
"""
