"""The tunnel's structured errors (no paramiko import, so the CLI can catch them cheaply)."""

from __future__ import annotations

from ..errors import HostKeyError, TunnelError

__all__ = ["TunnelError", "HostKeyError", "SSHUnreachable", "SSHAuthError", "RemoteHostError",
           "AgentError"]


class SSHUnreachable(TunnelError):
    """No SSH server answered at the address (DNS, refused, timeout, no route)."""

    def __init__(self, message="", hint=None, hostname=None, port=None):
        super().__init__(message, hint)
        self.hostname = hostname
        self.port = port


class SSHAuthError(TunnelError):
    """The SSH server refused every key offered (or a key needs a passphrase)."""

    def __init__(self, message="", hint=None, user=None, hostname=None):
        super().__init__(message, hint)
        self.user = user
        self.hostname = hostname


class RemoteHostError(TunnelError):
    """The far side lacks something hostbridge needs (python3, sudo, a writable dir)."""


class AgentError(TunnelError):
    """The tunnel agent could not start or serve its endpoint."""
