"""``POST /build`` between the query and the response stream, as dockerd's build router does it.

The API layer reads the request and writes JSON lines; this module decides what is an HTTP
error and what goes in the stream:

- an error before anything was written (bad query, unreadable context, parse error) is
  raised, so the API layer answers with its status (400, 404, …) as dockerd does;
- after the first message, errors are written as ``{"errorDetail": …, "error": …}`` and the
  response stays 200;
- with ``q=1`` the step output is held back; the result is ``{"stream": "sha256:…\\n"}``, and
  on a failure the held output is written before the error (dockerd's notVerboseBuffer).
"""

from __future__ import annotations

import select
import socket

from ..errors import GuestError
from .build import Builder, BuildOptions, error_message
from .context import BuildContext


def handle_build(backend, query_all: dict, body, send, tmp_parent: str = None, cancelled=None):
    """Run one ``POST /build``.

    Args:
        backend: the engine's BuildBackend.
        query_all: the query, each name → all its values.
        body: the request body (de-chunked), the context tar.
        send: ``send(message: dict)`` writes one JSON line to the client (it may raise when
            the client has gone; the build then stops and cleans up).
        tmp_parent: where to unpack the context (default: the system temp dir).
        cancelled: ``cancelled() -> bool`` saying the client has gone (``connection_closed``),
            so that a RUN printing nothing is still stopped when the client leaves.

    Returns:
        The image id, or None when the build failed after output had started (the error was
        sent in the stream).

    Raises:
        GuestError: the build failed before anything was sent.
    """
    options = BuildOptions.from_query(query_all)
    backend.check_run_options(options.run)
    held = []
    started = [False]

    def emit(message: dict) -> None:
        if options.quiet and "stream" in message:
            held.append(message)
            return
        started[0] = True
        send(message)

    ctx = BuildContext.from_stream(body, options.dockerfile, tmp_parent, backend.context_file_cache())
    try:
        try:
            image_id = Builder(backend, options, emit, cancelled).build(ctx)
        except GuestError as e:
            if not started[0] and not held:
                raise
            for message in held:
                send(message)
            send(error_message(e))
            return None
        if options.quiet:
            send({"stream": image_id + "\n"})
        return image_id
    finally:
        ctx.close(wait=False)


def connection_closed(sock: socket.socket):
    """A ``cancelled()`` for a request whose body has been read: True once the client has
    closed the connection (it reads as end-of-file), or it is broken."""

    poller = select.poll()  # not select.select: it fails for descriptors past 1024
    poller.register(sock, select.POLLIN | select.POLLRDHUP)

    def closed() -> bool:
        try:
            events = poller.poll(0)
            if not events:
                return False
            if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return True
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return closed
