"""Debian's archive signing keys, shipped with hostbridge (public keys).

The ``.gpg`` files are copied unchanged from this machine's ``debian-archive-keyring`` package
(version 2023.3+deb12u2, /usr/share/keyrings/): the bookworm (12) and trixie (13) archive,
security-archive and stable-release keys, so both releases verify.
"""

from __future__ import annotations

from importlib import resources

KEY_FILES = (
    "debian-archive-bookworm-automatic.gpg",
    "debian-archive-bookworm-security-automatic.gpg",
    "debian-archive-bookworm-stable.gpg",
    "debian-archive-trixie-automatic.gpg",
    "debian-archive-trixie-security-automatic.gpg",
    "debian-archive-trixie-stable.gpg",
)

_keyring = None


def default_keyring():
    """The shipped keys as an ``openpgp.Keyring`` (parsed once).

    Raises:
        ArchiveError: a key file is missing from this installation.
    """
    global _keyring
    if _keyring is None:
        from hostbridge.errors import ArchiveError
        from hostbridge.machines.debian.openpgp import Keyring

        blobs = []
        for name in KEY_FILES:
            try:
                blobs.append(resources.files(__name__).joinpath(name).read_bytes())
            except OSError as e:
                raise ArchiveError("the Debian archive key %s is missing from this hostbridge" % name,
                                   hint="reinstall hostbridge") from e
        _keyring = Keyring.from_bytes(*blobs)
    return _keyring
