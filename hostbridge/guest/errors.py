"""The guest engine's errors: one root, a few kinds the API layer maps to HTTP statuses.

Catch ``GuestError`` to catch everything the engine raises on purpose. The API layer turns a
kind into a status in exactly one place (``api.errors.status_for``); anything that is not a
``GuestError`` is a bug and becomes a 500.
"""


# dockerd's words when a request needs swarm mode, which this engine never runs
NOT_SWARM_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                     "to connect this node to swarm and try again.")


class GuestError(Exception):
    """Root of every error the guest engine raises on purpose."""

    def __init__(self, message=""):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class NotFound(GuestError):
    """No such container, image, network, volume, exec or path (404)."""


class Conflict(GuestError):
    """The request clashes with the current state: a name in use, a running container (409)."""


class InvalidParameter(GuestError):
    """The request is malformed or names a bad value; the message names the field (400)."""


class NotModified(GuestError):
    """Nothing to do: already started, already stopped (304)."""


class Unauthenticated(GuestError):
    """Credentials were refused (401): only ``POST /auth`` answers so, as dockerd does."""


class Forbidden(GuestError):
    """The operation is refused by policy (403)."""


class Unavailable(GuestError):
    """A needed system facility is missing or failing: overlay, cgroups, a shim (503/500)."""


class NotImplementedHere(GuestError):
    """The operation exists but the object's driver cannot do it (501, dockerd's NotImplemented):
    reading the logs of a container whose log driver keeps none."""


class RuntimeFailure(GuestError):
    """The container process could not be created or started (docker's 'OCI runtime' errors)."""


class UnsafeArchive(InvalidParameter):
    """A tar member would escape its destination (traversal, absolute path, link outside)."""
