"""The init binary of ``--init``: docker's ``docker-init`` (tini), found on this host.

As dockerd does, a container with ``HostConfig.Init`` gets the binary bind-mounted read-only at
``/sbin/docker-init`` and runs ``/sbin/docker-init -- CMD…`` as its pid 1. The binary runs in
the container's root, so only a statically linked one will do: a dynamically linked tini
(Debian's ``/usr/bin/tini``) finds no loader in a busybox image. Where no static binary exists
(a remote host with python3 only) the runtime's own Python init stands in (container.py).
"""

from __future__ import annotations

import os
import struct
import subprocess

from ..errors import NotFound

IN_CONTAINER = "/sbin/docker-init"
NAMES = ("docker-init", "tini-static", "tini")
# dockerd's own lookup dirs for docker-init, then the usual bin dirs (PATH is searched first)
DIRS = ("/usr/local/libexec/docker", "/usr/libexec/docker", "/usr/local/lib/docker", "/usr/lib/docker",
        "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
BUILTIN = "hostbridge built-in init (python)"

_PT_INTERP = 3
_ET_EXEC, _ET_DYN = 2, 3


class InitBinary:
    """A usable init binary: ``path`` on the host, ``version`` and ``commit`` from ``--version``."""

    def __init__(self, path: str):
        self.path = path
        self._version = None

    def _probe(self) -> tuple:
        if self._version is None:
            try:
                out = subprocess.run([self.path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, timeout=5).stdout.decode(errors="replace")
                self._version = parse_version(out)
            except (OSError, subprocess.SubprocessError):
                self._version = ("", None)
        return self._version

    @property
    def version(self) -> str:
        """``0.19.0`` from ``tini version 0.19.0 - git.de40ad0``; ``""`` when unknown."""
        return self._probe()[0]

    @property
    def commit(self) -> str:
        """The git commit the binary reports (``""`` when it names none, ``N/A`` when unreadable),
        as dockerd reports ``InitCommit.ID``."""
        commit = self._probe()[1]
        return "N/A" if commit is None else commit


def parse_version(text: str) -> tuple:
    """``tini version 0.19.0 - git.de40ad0`` → ``("0.19.0", "de40ad0")`` (dockerd's parse).

    Returns:
        ``(version, commit)``; commit is ``""`` when the text names none, and None when the text
        is not tini's at all (dockerd then says ``N/A``).
    """
    parts = text.strip().split(" - ")
    commit = ""
    if len(parts) >= 2:
        git = parts[1].strip().split(".")
        if len(git) == 2 and git[0] == "git":
            commit = git[1]
    head = parts[0].strip()
    version = head[len("tini version "):] if head.startswith("tini version ") else ""
    if not version and not commit:
        return "", None
    return version, commit


def _elf_header(path: str) -> tuple:
    """``(e_machine, e_type, [p_type, …])`` of an ELF file; ValueError when it is not one."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ValueError("not an ELF file")
        wide, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
        rest = f.read(48 if wide else 36)
        e_type, e_machine = struct.unpack_from(end + "HH", rest, 0)
        if wide:
            phoff, = struct.unpack_from(end + "Q", rest, 16)
            phentsize, phnum = struct.unpack_from(end + "HH", rest, 38)
        else:
            phoff, = struct.unpack_from(end + "I", rest, 12)
            phentsize, phnum = struct.unpack_from(end + "HH", rest, 26)
        if phnum > 512 or phentsize < 4:
            raise ValueError("implausible program headers")
        types = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            raw = f.read(4)
            if len(raw) < 4:
                raise ValueError("truncated program headers")
            types.append(struct.unpack(end + "I", raw)[0])
        return e_machine, e_type, types


def why_unusable(path: str):
    """None when ``path`` can be a container's init, else why not (one line).

    Usable: a regular executable ELF file for this machine's architecture without a program
    interpreter (PT_INTERP), i.e. statically linked (static-pie included).
    """
    if not os.path.exists(path):
        return "%s does not exist" % path
    if not os.path.isfile(path):
        return "%s is not a regular file" % path
    if not os.access(path, os.X_OK):
        return "%s is not executable" % path
    try:
        machine, e_type, types = _elf_header(path)
    except (OSError, ValueError, struct.error) as e:
        return "%s is not an executable ELF file (%s)" % (path, e)
    if e_type not in (_ET_EXEC, _ET_DYN):
        return "%s is not an executable ELF file" % path
    if _PT_INTERP in types:
        return "%s is dynamically linked: it would not run in an image without its loader" % path
    try:
        own = _elf_header("/proc/self/exe")[0]
    except (OSError, ValueError, struct.error):
        own = machine
    if machine != own:
        return "%s is built for another architecture" % path
    return None


def _search_dirs() -> list:
    dirs = []
    for d in (os.environ.get("PATH") or "").split(os.pathsep) + list(DIRS):
        if d and os.path.isabs(d) and d not in dirs:
            dirs.append(d)
    return dirs


def find(configured: str = "", dirs=None) -> InitBinary:
    """The init binary: ``configured`` (a daemon's ``--init-path``) when given, else the first
    static ``docker-init``, ``tini-static`` or ``tini`` in PATH and the usual dirs.

    Args:
        configured: a path; when set, nothing else is tried.
        dirs: the dirs to search (default: PATH, then ``DIRS``).
    Returns:
        An InitBinary whose path is absolute.
    Raises:
        NotFound: none usable; the message says why, for the engine's log.
    """
    if configured:
        reason = why_unusable(configured)
        if reason:
            raise NotFound("init path: " + reason)
        return InitBinary(os.path.abspath(configured))
    skipped = []
    for name in NAMES:
        for d in (_search_dirs() if dirs is None else dirs):
            cand = os.path.join(d, name)
            if not os.path.lexists(cand):
                continue
            reason = why_unusable(cand)
            if reason is None:
                return InitBinary(cand)
            skipped.append(reason)
    raise NotFound("no static %s found%s" % (" or ".join(NAMES),
                                              (" (" + "; ".join(skipped) + ")") if skipped else ""))


class Selector:
    """The engine's init binary, looked up on first use and again whenever it is missing (a
    tini installed or removed while the engine runs is seen at the next ``--init`` start)."""

    def __init__(self, configured: str = ""):
        self.configured = configured
        self.reason = ""  # why there is none, when there is none
        self._binary = None
        self._looked = False

    def binary(self):
        """The InitBinary to use, or None for the built-in init (``reason`` says why)."""
        if self._looked and self._binary is not None and os.path.exists(self._binary.path):
            return self._binary
        try:
            self._binary, self.reason = find(self.configured), ""
        except NotFound as e:
            self._binary, self.reason = None, str(e)
        self._looked = True
        return self._binary


def command(args) -> list:
    """The pid 1 command line with the init binary: docker's ``/sbin/docker-init -- ARGS``."""
    return [IN_CONTAINER, "--"] + list(args)


def bind_mount(host_path: str) -> dict:
    """The config.json-style mount that puts ``host_path`` at ``/sbin/docker-init``, read-only."""
    return {"type": "bind", "source": host_path, "destination": IN_CONTAINER, "options": ["bind", "ro"]}
