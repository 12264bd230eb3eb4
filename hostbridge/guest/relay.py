"""A stdio <-> unix-socket relay, run on the far side of SSH (stdlib only, Python >= 3.9).

Used by the tunnel agent when the SSH server refuses ``direct-streamlocal`` channels (it runs
this file's source with ``python3 -c``) and by the ``docker`` shim for the stock CLI's
``docker system dial-stdio``. Half-close is kept: EOF on stdin shuts the socket's write side;
EOF from the socket ends the relay.

Usage: ``python3 relay.py SOCKET``
"""

import os
import socket
import sys
import threading


def _stdin_to_sock(sock):
    fd = sys.stdin.fileno()
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main(argv=None):
    """Relay stdin/stdout to the unix socket named by ``argv[0]``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: relay SOCKET\n")
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[0])
    except OSError as e:
        sys.stderr.write("hostbridge relay: cannot connect to %s: %s\n" % (argv[0], e.strerror or e))
        return 1
    threading.Thread(target=_stdin_to_sock, args=(sock,), daemon=True).start()
    out = sys.stdout.fileno()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            while data:
                n = os.write(out, data)
                data = data[n:]
    except OSError:
        return 1
    return 0


if __name__ == "__main__":
    # os._exit: the stdin thread may still block in read(); the reply is complete.
    sys.stdout.flush()
    os._exit(main())
