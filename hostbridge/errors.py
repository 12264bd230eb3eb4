"""The host side's errors. Catch ``HostbridgeError`` to catch everything hostbridge raises.

Every error a user can meet carries a one-line message that says what went wrong and what to
do; the CLI prints ``str(err)`` and exits non-zero.
"""


class HostbridgeError(Exception):
    """Root of every error the host side raises on purpose."""

    exit_code = 1

    def __init__(self, message="", hint=None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return self.message if not self.hint else "%s (%s)" % (self.message, self.hint)


class ConfigError(HostbridgeError):
    """The configuration file or a setting is invalid."""


class MachineError(HostbridgeError):
    """A machine is missing, in the wrong state, or could not be managed."""

    def __init__(self, message="", hint=None, machine=None, stage=None):
        super().__init__(message, hint)
        self.machine = machine
        self.stage = stage


class VMError(MachineError):
    """A VM driver (vagrant, qemu) failed; carries the driver's own message."""


class ArchiveError(VMError):
    """The Debian archive client failed: ``url`` names what it fetched, the message what is wrong
    (unreachable, HTTP status, size or hash mismatch, no such package, disk full). ``status`` holds
    the HTTP status when the mirror answered with an error."""

    def __init__(self, message="", hint=None, url=None, status=None):
        super().__init__(message, hint, stage="packages")
        self.url = url
        self.status = status


class ArchiveUnreachable(ArchiveError):
    """The mirror could not be reached at all (a cached, verified copy may still serve)."""


class SignatureError(ArchiveError):
    """An OpenPGP signature is missing, bad, or made by no trusted key."""


class NotRootError(MachineError):
    """Native mode needs root on this host."""


class TunnelError(HostbridgeError):
    """The SSH tunnel to a VM or remote host failed."""


class HostKeyError(TunnelError):
    """An SSH host key is unknown or does not match the pinned one."""

    def __init__(self, message="", hint=None, hostname=None, got=None, expected=None):
        super().__init__(message, hint)
        self.hostname = hostname
        self.got = got
        self.expected = expected


class EngineUnreachable(HostbridgeError):
    """Nothing answers on the engine endpoint."""


class APIError(HostbridgeError):
    """The engine answered with an error status. ``status_code`` and ``explanation`` hold it."""

    def __init__(self, message="", status_code=None, explanation=None):
        super().__init__(message)
        self.status_code = status_code
        self.explanation = explanation if explanation is not None else message


class NotFound(APIError):
    """The engine answered 404: no such container, image, network or volume."""


class Conflict(APIError):
    """The engine answered 409."""


class CredentialsError(HostbridgeError):
    """Registry credentials could not be read or stored in the OS keyring."""


def api_error_from(status_code, message):
    """Build the right ``APIError`` subclass for an engine reply.

    Args:
        status_code: the HTTP status.
        message: the ``message`` field of the engine's JSON error body.
    Returns:
        An ``APIError`` instance (not raised).
    """
    cls = {404: NotFound, 409: Conflict}.get(status_code, APIError)
    return cls(message, status_code=status_code, explanation=message)
