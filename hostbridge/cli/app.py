"""The application object on ``ctx.obj``: config, client, output helpers. Only cli/ prints."""

from __future__ import annotations

import os
import sys

from ..errors import APIError, HostbridgeError


class Abort(HostbridgeError):
    """A command stops on purpose with a message (``App.abort``)."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.exit_code = code


class App:
    """What every command needs, created lazily so ``--help`` stays fast.

    Attributes:
        verbosity: -1 with ``-q``, 0 by default, 1+ with ``-v``.
        flags: settings given on the command line (``host``, ``machine``).
    """

    def __init__(self):
        self.verbosity = 0
        self.flags = {}
        self._config = None
        self._client = None

    @property
    def debug(self):
        """Tracebacks wanted (``-v`` or ``HOSTBRIDGE_DEBUG=1``)."""
        return self.verbosity > 0 or os.environ.get("HOSTBRIDGE_DEBUG") in ("1", "true", "yes")

    @property
    def config(self):
        """The resolved ``hostbridge.config.Config``."""
        if self._config is None:
            from .. import config

            self._config = config.load(self.flags)
        return self._config

    @property
    def endpoint(self):
        """The engine ``Endpoint`` commands talk to."""
        from ..client.endpoint import resolve_endpoint

        return resolve_endpoint(self.config)

    @property
    def client(self):
        """An ``APIClient`` for the endpoint (imports the HTTP client on first use)."""
        if self._client is None:
            from ..client import APIClient

            self._client = APIClient(self.endpoint, timeout=self.config["timeout"])
        return self._client

    def out(self, text="", nl=True):
        """Write to stdout (flushed, like click.echo)."""
        _write(sys.stdout, text, nl)

    def write_bytes(self, data, stream=1):
        """Write raw bytes to stdout (1) or stderr (2), flushed."""
        f = sys.stdout.buffer if stream == 1 else sys.stderr.buffer
        f.write(data)
        f.flush()

    def write_stream(self, chunks, output=None):
        """Write a tar stream (``save``, ``export``) to ``output`` (replaced atomically) or to stdout,
        never to a terminal.

        Args:
            chunks: an iterator of bytes.
            output: a file path, or None for stdout.
        """
        if output is None:
            if sys.stdout.isatty():
                self.abort("Error: cowardly refusing to save to a terminal. Use the -o flag or redirect")
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        tmp = output + ".tmp"
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(tmp, output)
        except OSError as e:
            self.abort("Error: cannot write %s: %s" % (output, e.strerror or e))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def confirm(self, warning, force):
        """docker's prune prompt: ``warning`` then ``Are you sure…? [y/N]`` on stdout; True when confirmed."""
        if force:
            return True
        self.out(warning)
        self.out("Are you sure you want to continue? [y/N] ", nl=False)
        answer = sys.stdin.readline() if sys.stdin is not None and not sys.stdin.closed else ""
        return answer.strip().lower() in ("y", "yes")

    def err(self, text):
        """Write a line to stderr."""
        _write(sys.stderr, text, True)

    def status(self, text):
        """A progress note on stderr, silenced by ``-q``."""
        if self.verbosity >= 0:
            _write(sys.stderr, text, True)

    def abort(self, message, code=1):
        """Stop the command: ``message`` on stderr, exit ``code``."""
        raise Abort(message, code)

    def for_each(self, names, action):
        """Run ``action(name)`` for each name as docker does: carry on past failures, exit 1 at the end.

        Args:
            names: container or image names.
            action: returns the lines to print (a string or a list), or None to print the name.
        Raises:
            click.exceptions.Exit: status 1 when any failed (each failure already reported).
        """
        failed = False
        for name in names:
            try:
                result = action(name)
            except APIError as e:
                self.report(e)
                failed = True
                continue
            for line in [name] if result is None else [result] if isinstance(result, str) else result:
                self.out(line)
        if failed:
            import click

            raise click.exceptions.Exit(1)

    def run(self, fn) -> int:
        """Call ``fn()`` (returning an exit status); errors become one line on stderr and a status.

        A ``HostbridgeError`` is reported in docker's words; an unexpected exception as one line,
        or its traceback with ``-v``/``HOSTBRIDGE_DEBUG=1``.
        """
        try:
            return fn() or 0
        except HostbridgeError as e:
            self.report(e)
            return getattr(e, "exit_code", 1)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return 141
        except Exception as e:
            if self.debug:
                import traceback

                traceback.print_exc()
            else:
                self.err("Error: unexpected %s: %s (run with -v or HOSTBRIDGE_DEBUG=1 for the traceback)"
                         % (type(e).__name__, e))
            return 1

    def report(self, err):
        """Print a ``HostbridgeError`` as one line (API errors in docker's words)."""
        if isinstance(err, Abort):
            self.err(str(err))
        elif isinstance(err, APIError):
            self.err("Error response from daemon: %s" % err)
        else:
            self.err("Error: %s" % err)
        if self.debug:
            import traceback

            traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)


def _write(stream, text, nl):
    # What click.echo does for text, without importing click: `hostbridge ps` must start fast.
    if stream is None:
        return
    stream.write(str(text) + "\n" if nl else str(text))
    stream.flush()
