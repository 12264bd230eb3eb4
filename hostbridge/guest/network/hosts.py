"""Name resolution on user networks: every container's /etc/hosts lists its peers.

Chosen over an embedded DNS server on 127.0.0.11 because it needs no server thread or socket in
every container's namespace, survives engine restarts by itself (the files stay put while the
engine is down), and works for every resolver (static busybox, musl, glibc) without a
resolv.conf rewrite. The cost: a file rewrite per member when a peer joins or leaves, and no
resolution of names outside the container's networks (the host's resolvers still answer those).
"""

from __future__ import annotations

import os

BASE = "hosts.base"  # the container's own hosts file as created (localhost lines, --add-host)
_MARK = "# hostbridge network peers"


def save_base(cdir):
    """Remember the hosts file the container was created with."""
    src = os.path.join(cdir, "hosts")
    try:
        with open(src) as f:
            text = f.read()
    except FileNotFoundError:
        return
    with open(os.path.join(cdir, BASE), "w") as f:
        f.write(text)


def render(base, own, peers):
    """The full hosts text.

    Args:
        base: the created file's text.
        own: ``[(ip, hostname)]`` for the container's own addresses.
        peers: ``[(ip, [names…])]`` of the other containers on its user networks.
    """
    lines = [base.rstrip("\n")] if base.strip() else []
    lines += ["%s\t%s" % (ip, name) for ip, name in own]
    if peers:
        lines.append(_MARK)
        lines += ["%s\t%s" % (ip, " ".join(names)) for ip, names in peers]
    return "\n".join(lines) + "\n"


def write(cdir, own, peers):
    """Rewrite ``cdir/hosts`` in place: it is bind-mounted, so the inode must stay the same."""
    try:
        with open(os.path.join(cdir, BASE)) as f:
            base = f.read()
    except FileNotFoundError:
        return
    text = render(base, own, peers).encode()
    try:
        fd = os.open(os.path.join(cdir, "hosts"), os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return  # the container is being removed
    try:
        os.pwrite(fd, text, 0)  # write, then cut: a reader never sees an empty file
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)
