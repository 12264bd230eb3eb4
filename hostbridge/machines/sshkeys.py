"""Per-machine SSH keys: the client key the guest authorizes and the guest's own host key.

Both are made on the host at create time, so the host knows the guest's host key before the
first connection and pins it (no trust on first use). paramiko cannot generate Ed25519 keys;
``cryptography`` (paramiko's own dependency) can, in OpenSSH's format.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def generate(private_path, public_path, comment):
    """Write a new Ed25519 key pair (private 0600, OpenSSH format) unless it exists already.

    Args:
        private_path: where the private key goes.
        public_path: where the ``ssh-ed25519 AAAA… comment`` line goes.
        comment: the public key's comment.
    Returns:
        The public key line (without the comment).
    """
    if os.path.exists(private_path) and os.path.exists(public_path):
        return public_line(public_path)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    with open(public_path, "wb") as f:
        f.write(public + b" " + comment.encode() + b"\n")
    return public.decode()


def public_line(public_path):
    """``"ssh-ed25519 AAAA…"`` from a .pub file (the comment dropped)."""
    with open(public_path) as f:
        return " ".join(f.read().split()[:2])
