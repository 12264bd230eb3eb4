"""The one place that turns engine errors into HTTP statuses.

Adding a kind here is a question worth asking: most new errors should be one of these kinds.
"""

from __future__ import annotations

from .. import errors as e


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception raised while serving a request (500 = a bug)."""
    if isinstance(exc, e.NotFound):
        return 404
    if isinstance(exc, e.Conflict):
        return 409
    if isinstance(exc, e.InvalidParameter):
        return 400
    if isinstance(exc, e.NotModified):
        return 304
    if isinstance(exc, e.Unauthenticated):
        return 401  # login checks only: a 401 on pull would make the docker CLI prompt for a login
    if isinstance(exc, e.Forbidden):
        return 403
    if isinstance(exc, e.Unavailable):
        return 503
    if isinstance(exc, e.NotImplementedHere):
        return 501  # dockerd's errdefs.NotImplemented (a log driver that cannot be read)
    if isinstance(exc, e.RuntimeFailure):
        return 500  # docker answers runtime (OCI) failures with 500 too; the CLI shows the text
    return 500
