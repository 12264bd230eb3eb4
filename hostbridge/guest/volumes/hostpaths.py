"""Bind sources spelled as a Windows host spells them, translated to where its shares are mounted.

The stock docker CLI on Windows passes ``-v C:\\Users\\ana\\proj:/proj`` to a Linux engine as
typed, and ``--mount source=C:\\…`` likewise. A VM on Windows mounts the host's ``C:\\Users`` at
``/c/Users`` (docker-machine's layout), and the host tells the engine so at each ``up`` in
``ROOT/host-paths.json``: ``{"C:\\\\Users": "/c/Users"}``. A Windows path outside every share is
refused (400) with the list of shares, never guessed at. Pure functions but ``load_map``.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re

from ..errors import InvalidParameter

MAP_FILE = "host-paths.json"  # in the engine's root; written by the host (machines/steps.py)
_DRIVE = re.compile(r"^[A-Za-z]:(?:[\\/]|$)")


def is_windows_path(path: str) -> bool:
    """Whether ``path`` starts with a drive letter (``C:\\…``, ``c:/…``)."""
    return bool(_DRIVE.match(path or ""))


def split_bind(spec: str, windows: bool = True) -> list:
    """A ``-v`` string → its ``:``-separated parts; with ``windows``, a drive letter's colon stays
    in the source.

    ``C:\\Users\\a:/a:ro`` → ``["C:\\Users\\a", "/a", "ro"]``. A POSIX spec splits on every ``:``
    (as docker's Linux parser does), and so does every spec without ``windows``: on an engine
    that serves no Windows host, ``c:/data`` is volume ``c`` at ``/data``. With it, the drive
    wins, as in docker's Windows parser.
    """
    if windows and len(spec) > 2 and _DRIVE.match(spec):
        source, sep, rest = spec[2:].partition(":")
        return [spec[:2] + source] + (rest.split(":") if sep else [])
    return spec.split(":")


def bind_parts(spec: str) -> list:
    """The parts of a ``-v`` string for a check that does not know the share map: the Windows
    reading when it gives an absolute destination, else the POSIX one."""
    parts = split_bind(spec, windows=True)
    if len(parts) >= 2 and parts[1].startswith("/"):
        return parts
    return split_bind(spec, windows=False)


def load_map(root: str) -> dict:
    """The host's share map from ``ROOT/host-paths.json`` ({} when there is none or it is unreadable)."""
    try:
        with open(os.path.join(root, MAP_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v.startswith("/")}


def describe(path_map: dict) -> str:
    """The shares in words, for an error message."""
    return "shared: " + ", ".join("%s at %s" % (h, g) for h, g in sorted(path_map.items()))


def translate(source: str, path_map: dict) -> str:
    """Where a bind source lies in the guest: a Windows path through ``path_map``, others as given.

    Drive letters and paths compare without case (as Windows does); ``/`` and ``\\`` are both
    separators; ``..`` is resolved before the comparison, so it cannot climb out of a share.

    Without a map (no Windows host), every source is returned as given.

    Raises:
        InvalidParameter: a Windows path outside every share (the message lists them).
    """
    if not path_map or not is_windows_path(source):
        return source
    norm = ntpath.normpath(source.replace("/", "\\"))
    if len(norm) == 2:
        norm += "\\"
    low = norm.lower()
    for host in sorted(path_map, key=len, reverse=True):  # the deepest share first
        base = ntpath.normpath(host.replace("/", "\\")).rstrip("\\")
        if low == base.lower() or low.startswith(base.lower() + "\\"):
            rest = norm[len(base):].replace("\\", "/")
            return posixpath.normpath(path_map[host].rstrip("/") + "/" + rest.lstrip("/"))
    raise InvalidParameter("invalid mount config: %s is not in a folder shared with the VM (%s): share its folder "
                           "with `hostbridge up --share`, on a new machine" % (source, describe(path_map)))
