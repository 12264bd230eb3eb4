"""The guest engine: a Docker Engine API server on Linux namespaces, cgroups and overlayfs.

Standard library only (Python >= 3.9) so that it ships as one zipapp onto any Linux with
python3. Nothing in this package imports host code (anything outside ``hostbridge.guest``).
"""

ENGINE_VERSION = "0.1.0"
API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
