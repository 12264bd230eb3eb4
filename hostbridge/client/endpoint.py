"""Engine endpoints: parsing ``unix:///path`` / ``npipe:////./pipe/NAME`` / ``tcp://127.0.0.1:N``
and choosing one.

Kept free of requests so that resolving an endpoint (``hostbridge status``, ``up``) stays cheap.
"""

from __future__ import annotations

import os
import socket

from ..errors import ConfigError, EngineUnreachable, MachineError

NATIVE_MACHINE = "default"


class Endpoint:
    """A parsed engine endpoint.

    Attributes:
        url: as given, normalised (``unix:///…``, ``npipe:////./pipe/NAME`` or ``tcp://host:port``).
        scheme: ``"unix"``, ``"npipe"`` (a Windows named pipe) or ``"tcp"``.
        path: the socket path (unix), or the pipe's ``\\\\.\\pipe\\NAME`` (npipe).
        host, port: the address (tcp).
    """

    def __init__(self, url, scheme, path=None, host=None, port=None):
        self.url, self.scheme, self.path, self.host, self.port = url, scheme, path, host, port

    @property
    def base_url(self):
        """The URL prefix requests are sent to."""
        if self.scheme in ("unix", "npipe"):
            return "http+%s://localhost" % self.scheme
        return "http://%s:%d" % (self.host, self.port)

    def connect(self, timeout=None) -> socket.socket:
        """Open a raw stream socket to the engine.

        Raises:
            EngineUnreachable: nothing listens there.
        """
        try:
            return self.connect_raw(timeout)
        except OSError as e:
            raise unreachable(self, e)

    def connect_raw(self, timeout=None) -> socket.socket:
        """As ``connect``, raising the OSError itself."""
        if self.scheme == "npipe":
            from ..tunnel import npipe  # Windows only; no paramiko there

            return npipe.connect(self.path, timeout)
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def __repr__(self):
        return "Endpoint(%r)" % self.url


def permission_hint(path: str, user: str | None = None) -> str:
    """What a user refused by the engine's socket should do: join the socket's group (pure but
    for reading the socket's owner and the user's name)."""
    import getpass
    import grp

    try:
        group = grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        group = "hostbridge"
    if group == "root":
        return ("the socket belongs to group root: start the engine with `sudo hostbridge up`, which creates the "
                "hostbridge group, then join it: sudo usermod -aG hostbridge %s" % (user or getpass.getuser()))
    return ("the socket is for group %s: sudo usermod -aG %s %s, then log in again (or run `newgrp %s`)"
            % (group, group, user or getpass.getuser(), group))


def unreachable(endpoint, err=None) -> EngineUnreachable:
    """The error for an endpoint nothing answers on, with a hint of what to do (a refused
    socket gets the group to join instead: the engine does run)."""
    detail = ""
    if err is not None:
        detail = ": %s" % (getattr(err, "strerror", None) or err)
    if isinstance(err, PermissionError) and endpoint.scheme == "unix":
        return EngineUnreachable("permission denied on the hostbridge engine's socket %s" % endpoint.path,
                                 hint=permission_hint(endpoint.path))
    return EngineUnreachable(
        "cannot connect to the hostbridge engine at %s%s" % (endpoint.url, detail),
        hint="is it running? start it with `hostbridge up`")


def parse_endpoint(url: str) -> Endpoint:
    """Parse ``unix:///path``, ``npipe:////./pipe/NAME``, ``tcp://host:port`` or ``http://host:port``.

    Args:
        url: the endpoint string.
    Returns:
        An ``Endpoint``.
    Raises:
        ConfigError: an unsupported scheme, or a missing path or port.
    """
    if url.startswith("/"):
        url = "unix://" + url
    if url.startswith("unix:///") and "?" not in url and "#" not in url:  # the usual form, without urllib
        return Endpoint(url, "unix", path=url[7:])
    if url.startswith("npipe:"):
        from ..hostos import pipe_path_from_url, url_from_pipe_path

        try:
            path = pipe_path_from_url(url)
        except ValueError as e:
            raise ConfigError(str(e), hint="use npipe:////./pipe/NAME") from None
        return Endpoint(url_from_pipe_path(path), "npipe", path=path)
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("unix", "http+unix"):
        path = parts.path
        if not path:
            raise ConfigError("endpoint %r has no socket path" % url, hint="use unix:///path/to/docker.sock")
        return Endpoint("unix://" + path, "unix", path=path)
    if parts.scheme in ("tcp", "http"):
        if not parts.hostname or not parts.port:
            raise ConfigError("endpoint %r needs a host and a port" % url, hint="use tcp://127.0.0.1:2375")
        return Endpoint("tcp://%s:%d" % (parts.hostname, parts.port), "tcp", host=parts.hostname, port=parts.port)
    raise ConfigError("unsupported endpoint %r" % url,
                      hint="use unix:///path, npipe:////./pipe/NAME or tcp://127.0.0.1:PORT")


def resolve_endpoint(config, machine_loader=None) -> Endpoint:
    """Choose the engine endpoint: an explicit host, else the machine's, else native's socket.

    Args:
        config: a ``hostbridge.config.Config`` (``host``, ``machine``, ``native.socket``).
        machine_loader: ``name -> Machine or None`` (default: ``hostbridge.machines.record.load``).
    Returns:
        The ``Endpoint``.
    Raises:
        MachineError: the selected machine does not exist or has no endpoint yet.
        ConfigError: a malformed endpoint.
    """
    if config["host"]:
        return parse_endpoint(config["host"])
    if machine_loader is None:
        from ..machines.record import load as machine_loader
    name = config["machine"]
    machine = machine_loader(name)
    if machine is None:
        if name == NATIVE_MACHINE:
            return parse_endpoint("unix://" + config["native.socket"])
        raise MachineError("no machine named %r" % name, hint="create it first, or pick another with --machine",
                           machine=name)
    if machine.mode == "native":  # the usual path, without importing the modes
        return parse_endpoint(machine.endpoint_url or "unix://" + config["native.socket"])
    from ..machines.modes import for_record  # light: each mode imports its own code when asked

    return parse_endpoint(for_record(machine, config).endpoint())
