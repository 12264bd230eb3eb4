"""What differs per host OS, as pure functions: the local endpoint's form, default shares, and
where a shared host folder lands in the guest.

Every function takes the OS as an argument (``platform.system()``'s spelling: ``Linux``,
``Darwin``, ``Windows``; default the running one), so each OS's answer is tested on any OS.
The Windows calls themselves (named pipes, SIDs) are in ``tunnel/npipe.py``.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import sys

WINDOWS, DARWIN, LINUX = "Windows", "Darwin", "Linux"
PIPE_PREFIX = "\\\\.\\pipe\\"  # \\.\pipe\ : the local machine's pipe namespace
NPIPE_URL_PREFIX = "npipe:////./pipe/"  # how the docker CLI spells that namespace in DOCKER_HOST
_DRIVE_PATH = re.compile(r"^([A-Za-z]):(?:[\\/]|$)")


def host_system(platform: str | None = None) -> str:
    """``sys.platform`` → ``Windows``, ``Darwin`` or ``Linux`` (anything else POSIX reads as Linux)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return WINDOWS
    if platform == "darwin":
        return DARWIN
    return LINUX


def endpoint_kind(system: str | None = None) -> str:
    """The tunnel's local endpoint on ``system``: ``npipe`` on Windows, else ``unix``.

    Never a TCP port: an open 127.0.0.1 port lets any local user, and any web page through the
    browser, POST to the engine, which is root on the guest; the docker CLI cannot send a secret.
    """
    return "npipe" if (system or host_system()) == WINDOWS else "unix"


def pipe_name(machine: str) -> str:
    """The pipe's name (without ``\\\\.\\pipe\\``) for ``machine``: ``hostbridge-NAME``.

    Characters a pipe name cannot hold (``\\``) or that the URL form would garble are replaced
    by ``_``; machine names are checked elsewhere, so this only guards the spelling.
    """
    return "hostbridge-" + re.sub(r"[^A-Za-z0-9_.-]", "_", machine)


def pipe_path(machine: str) -> str:
    """``\\\\.\\pipe\\hostbridge-NAME``: what CreateNamedPipeW and CreateFileW take."""
    return PIPE_PREFIX + pipe_name(machine)


def npipe_url(machine: str) -> str:
    """``npipe:////./pipe/hostbridge-NAME``: the DOCKER_HOST value the docker CLI expects."""
    return NPIPE_URL_PREFIX + pipe_name(machine)


def pipe_path_from_url(url: str) -> str:
    """An ``npipe://`` URL → the pipe's Win32 path.

    Accepts the docker CLI's forms: ``npipe:////./pipe/NAME`` and ``npipe:///./pipe/NAME``
    (slashes or backslashes), and only the local machine's pipes (``.``).

    Raises:
        ValueError: not an npipe URL, a remote pipe, or no pipe name.
    """
    if not url.startswith("npipe://"):
        raise ValueError("%r is not an npipe:// URL" % url)
    rest = url[len("npipe://"):].replace("\\", "/").lstrip("/")
    parts = rest.split("/")
    if len(parts) != 3 or parts[0] != "." or parts[1].lower() != "pipe" or not parts[2]:
        raise ValueError("%r is not a local named pipe: use npipe:////./pipe/NAME" % url)
    return PIPE_PREFIX + parts[2]


def url_from_pipe_path(path: str) -> str:
    """``\\\\.\\pipe\\NAME`` → ``npipe:////./pipe/NAME``.

    Raises:
        ValueError: not a local pipe path.
    """
    if not path.lower().startswith(PIPE_PREFIX.lower()) or len(path) == len(PIPE_PREFIX):
        raise ValueError("%r is not a local named pipe path (\\\\.\\pipe\\NAME)" % path)
    return NPIPE_URL_PREFIX + path[len(PIPE_PREFIX):]


_SID = re.compile(r"^S-1-\d+(?:-\d+)+$")


def owner_only_sddl(user_sid: str) -> str:
    """The security descriptor (SDDL) of a pipe only its owner and SYSTEM may open.

    ``D:P`` is a protected DACL (nothing inherited); each ``(A;;GA;;;SID)`` allows all access to
    one SID: the user's and ``SY`` (LocalSystem, which owns every process anyway). Everyone
    else, and every remote client, is denied by the absence of an entry.

    Raises:
        ValueError: ``user_sid`` is not a SID string (an SDDL made from a bad string could grant
            more than intended).
    """
    if not _SID.match(user_sid or ""):
        raise ValueError("%r is not a SID (S-1-…)" % user_sid)
    return "D:P(A;;GA;;;SY)(A;;GA;;;%s)" % user_sid


# ---- shares ----------------------------------------------------------------------------------

def default_shares(system: str | None = None, home: str = "") -> tuple:
    """The host folders a new VM shares by default, as docker-machine and Docker Desktop did.

    Args:
        system: the host OS.
        home: the user's home directory (Linux's share; Windows finds its drive there).
    Returns:
        macOS ``("/Users",)``; Windows ``("C:\\\\Users",)`` on the drive of ``home``; Linux
        ``(home,)``.
    """
    system = system or host_system()
    if system == DARWIN:
        return ("/Users",)
    if system == WINDOWS:
        m = _DRIVE_PATH.match(home or "")
        return ("%s:\\Users" % (m.group(1).upper() if m else "C"),)
    return (home,) if home else ()


def is_windows_path(path: str) -> bool:
    """Whether ``path`` starts with a drive letter: ``C:\\…``, ``c:/…`` or ``C:``."""
    return bool(_DRIVE_PATH.match(path or ""))


def guest_path(host_path: str, system: str | None = None) -> str:
    """Where host folder ``host_path`` is mounted in the guest.

    On Windows ``C:\\Users\\ana`` → ``/c/Users/ana`` (docker-machine's and Git Bash's form);
    elsewhere the same path (a macOS or Linux path is a valid guest path).
    """
    if (system or host_system()) != WINDOWS or not is_windows_path(host_path):
        return host_path
    drive, rest = host_path[0].lower(), host_path[2:].replace("\\", "/")
    return posixpath.normpath("/%s/%s" % (drive, rest.lstrip("/"))).rstrip("/") or "/"


def host_path_map(shares, system: str | None = None) -> dict:
    """``{host folder: guest path}`` of the shares whose guest path differs (Windows' drives).

    The engine is given this map so a bind the stock docker CLI sends as written on Windows
    (``C:\\Users\\ana\\p:/p``) can be translated (``guest/hostpaths.py``).
    """
    out = {}
    for share in shares:
        guest = guest_path(share, system)
        if guest != share:
            out[ntpath.normpath(share)] = guest
    return out
