"""The host's Docker Engine API client (requests; never paramiko).

``APIClient(endpoint)`` combines one mixin per resource, as docker-py does.
"""

from __future__ import annotations

from .api import BaseClient
from .build import BuildAPIMixin
from .containers import ContainerAPIMixin
from .execs import ExecAPIMixin
from .images import ImageAPIMixin
from .system import SystemAPIMixin


class APIClient(BaseClient, BuildAPIMixin, ContainerAPIMixin, ExecAPIMixin, ImageAPIMixin, SystemAPIMixin):
    """A low-level client for one engine endpoint.

    Args:
        endpoint: ``unix:///path``, ``tcp://127.0.0.1:N``, or an ``Endpoint``.
        timeout: seconds for connect and each read of non-streaming calls.
    """


__all__ = ["APIClient"]
