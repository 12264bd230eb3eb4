"""The host's Docker Engine API client (standard-library HTTP; never paramiko).

``APIClient(endpoint)`` combines one mixin per resource, as docker-py does.
"""

from __future__ import annotations

from .api import BaseClient
from .build import BuildAPIMixin
from .containers import ContainerAPIMixin
from .execs import ExecAPIMixin
from .images import ImageAPIMixin
from .networks import NetworkAPIMixin
from .system import SystemAPIMixin
from .volumes import VolumeAPIMixin


class APIClient(BaseClient, BuildAPIMixin, ContainerAPIMixin, ExecAPIMixin, ImageAPIMixin, NetworkAPIMixin,
                SystemAPIMixin, VolumeAPIMixin):
    """A low-level client for one engine endpoint.

    Args:
        endpoint: ``unix:///path``, ``tcp://127.0.0.1:N``, or an ``Endpoint``.
        timeout: seconds for connect and each read of non-streaming calls.
    """


__all__ = ["APIClient"]
