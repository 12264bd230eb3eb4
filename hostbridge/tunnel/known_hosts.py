"""Per-machine host-key pinning: first contact needs an explicit yes, a changed key is refused.

Each machine has its own ``known_hosts`` file in its state dir; hostbridge never reads or
writes the user's ``~/.ssh/known_hosts`` and never trusts a key it was not told to trust
(no ``AutoAddPolicy``).
"""

from __future__ import annotations

import base64
import hashlib
import os

import paramiko

from ..errors import HostKeyError


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key, e.g. ``SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8``."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(hostname: str, port: int) -> str:
    """The known_hosts name of ``hostname:port`` (``[host]:port`` unless the port is 22)."""
    return hostname if port == 22 else "[%s]:%d" % (hostname, port)


def normalise_fingerprint(fp: str) -> str:
    """Accept ``SHA256:xxx`` or bare ``xxx`` (with or without base64 padding)."""
    fp = fp.strip()
    if not fp.upper().startswith("SHA256:"):
        fp = "SHA256:" + fp
    return "SHA256:" + fp.split(":", 1)[1].rstrip("=")


class KnownHosts:
    """The pinned host keys of one machine.

    Args:
        path: the machine's known_hosts file (created on first pin, mode 0600).
    """

    def __init__(self, path: str):
        self.path = path

    def load_into(self, client: paramiko.SSHClient) -> None:
        """Make ``client`` check server keys against this file."""
        if os.path.exists(self.path):
            client.load_host_keys(self.path)

    def pinned(self, hostname: str, port: int) -> list:
        """Fingerprints pinned for ``hostname:port``."""
        keys = paramiko.HostKeys(self.path) if os.path.exists(self.path) else paramiko.HostKeys()
        found = keys.lookup(host_entry(hostname, port)) or {}
        return [fingerprint(k) for k in found.values()]

    def pin(self, hostname: str, port: int, key: paramiko.PKey) -> None:
        """Add ``key`` for ``hostname:port`` and save the file atomically (0600)."""
        keys = paramiko.HostKeys(self.path) if os.path.exists(self.path) else paramiko.HostKeys()
        keys.add(host_entry(hostname, port), key.get_name(), key)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        keys.save(tmp)
        os.replace(tmp, self.path)


    def pin_public_key(self, hostname: str, port: int, line: str) -> str:
        """Pin a key given as an OpenSSH public key line (``ssh-ed25519 AAAA… [comment]``).

        For machines whose host key hostbridge generated itself (the VM image), so there is
        nothing to confirm. Returns the key's fingerprint.

        Raises:
            HostKeyError: the line is not a public key.
        """
        parts = line.split()
        try:
            key = paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
        except (IndexError, ValueError, paramiko.SSHException) as e:
            raise HostKeyError("%r is not an SSH public key line (%s): pass the content of a .pub file"
                               % (line[:40], e), hostname=hostname) from None
        self.pin(hostname, port, key)
        return fingerprint(key)


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """Pin an unknown host key only when its fingerprint was confirmed; otherwise raise.

    Args:
        known_hosts: where to pin.
        port: the SSH port (paramiko passes only the hostname to the policy).
        accept: fingerprints the user confirmed (``--accept-host-key`` or an interactive yes;
            a ProxyJump host's and the target's), empty to refuse every unknown key.
    """

    def __init__(self, known_hosts: KnownHosts, port: int, accept=()):
        self.known_hosts = known_hosts
        self.port = port
        self.accept = [normalise_fingerprint(a) for a in ([accept] if isinstance(accept, str) else accept) if a]

    def missing_host_key(self, client, hostname, key):
        got = fingerprint(key)
        name = _bare(hostname)
        if not self.accept:
            raise HostKeyError(
                "the host key of %s is not pinned yet: its fingerprint is %s; check it and "
                "confirm with --accept-host-key %s" % (name, got, got),
                hostname=name, got=got, expected=None)
        if got not in self.accept:
            raise HostKeyError(
                "the host key of %s is %s, not the %s you gave: check the fingerprint "
                "with the host's administrator" % (name, got, " or ".join(self.accept)),
                hostname=name, got=got, expected=self.accept[0])
        self.known_hosts.pin(name, self.port, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


def changed_key_error(hostname: str, got: paramiko.PKey, expected: paramiko.PKey, path: str) -> HostKeyError:
    """The hard error for a server whose key differs from the pinned one."""
    name = _bare(hostname)
    g, e = fingerprint(got), fingerprint(expected)
    return HostKeyError(
        "the host key of %s CHANGED: it is now %s, pinned %s; if the host was reinstalled, "
        "remove the pin in %s and add it again, else do not connect" % (name, g, e, path),
        hostname=name, got=g, expected=e)


def _bare(hostname: str) -> str:
    """``host`` from paramiko's ``[host]:port`` spelling."""
    if hostname.startswith("[") and "]:" in hostname:
        return hostname[1:hostname.index("]:")]
    return hostname
