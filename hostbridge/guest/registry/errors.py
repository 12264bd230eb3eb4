"""Registry errors: each is a ``GuestError`` kind (so the API maps it to a status) and a
``RegistryError`` (so callers can catch everything that came from talking to a registry).

Messages are one line: what went wrong, then what to do.
"""

from __future__ import annotations

from ..errors import Forbidden, GuestError, InvalidParameter, NotFound, Unavailable


class RegistryError(GuestError):
    """Root of the registry errors. ``status`` holds the HTTP status when there was one."""

    def __init__(self, message="", status=None, registry=None, codes=()):
        super().__init__(message)
        self.status = status
        self.registry = registry
        self.codes = tuple(codes)  # the registry's error codes (``NAME_UNKNOWN``…), when it sent some


class Unauthorized(RegistryError, Forbidden):
    """401: no or wrong credentials."""


class Denied(RegistryError, Forbidden):
    """403: authenticated, but not allowed."""


class RegistryNotFound(RegistryError, NotFound):
    """404: no such repository, tag, manifest or blob."""


class TooManyRequests(RegistryError, Unavailable):
    """429: the registry's rate limit was reached."""


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry could not be reached, or kept answering 5xx after the retries."""


class BadManifest(RegistryError, InvalidParameter):
    """A manifest or index is too large, malformed, or does not match its digest."""


class BlobVerificationError(RegistryError, InvalidParameter):
    """A downloaded blob's digest or size does not match its descriptor."""


class NoMatchingPlatform(RegistryError, NotFound):
    """A manifest list has no entry for the requested platform."""
