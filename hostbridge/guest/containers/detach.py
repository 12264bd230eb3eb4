"""Detach keys: the key sequence that ends an attach or exec session and leaves the process running.

dockerd watches a client's stdin for it (default ctrl-p,ctrl-q; ``detachKeys`` on attach,
``DetachKeys`` on exec create); the sequence itself never reaches the process.
"""

from __future__ import annotations

from ..errors import InvalidParameter

DEFAULT = b"\x10\x11"  # ctrl-p, ctrl-q
_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(text: str | None, what: str = "detach keys") -> bytes:
    """``"ctrl-p,ctrl-q"`` → ``b"\\x10\\x11"`` (docker's format); empty → the default.

    Raises:
        InvalidParameter: dockerd's "Invalid detach keys (X) provided" (``what`` names them).
    """
    if not text:
        return DEFAULT
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out.append(ord(key) & 0xFF)
            continue
        low = key.lower()
        if not low.startswith("ctrl-") or len(low) != 6:
            raise InvalidParameter("Invalid %s (%s) provided" % (what, text))
        ch = low[5]
        if "a" <= ch <= "z":
            out.append(ord(ch) - ord("a") + 1)
        elif ch in _CTRL_SPECIAL:
            out.append(_CTRL_SPECIAL[ch])
        else:
            raise InvalidParameter("Invalid %s (%s) provided" % (what, text))
    return bytes(out)


class Detector:
    """Finds the sequence in a byte stream split anywhere, holding back a partial match."""

    def __init__(self, keys: bytes):
        self.keys, self.pos = keys, 0

    def feed(self, data: bytes) -> tuple:
        """Returns ``(bytes to pass on, detached)``; after a detach the rest is dropped."""
        out = bytearray()
        for b in data:
            if b == self.keys[self.pos]:
                self.pos += 1
                if self.pos == len(self.keys):
                    self.pos = 0
                    return bytes(out), True
                continue
            if self.pos:  # a partial match that broke off: those bytes were input after all
                out += self.keys[:self.pos]
                self.pos = 0
                if b == self.keys[0]:
                    self.pos = 1
                    continue
            out.append(b)
        return bytes(out), False
