"""``cp``: files between a container and here, through the engine's archive endpoints.

Both ways the tar's top entry is renamed as docker's archive.CopyTo does: into an existing
directory a path keeps its name (``dir/.`` copies its content), otherwise it takes the
destination's name in the destination's parent.
"""

from __future__ import annotations

import io
import os
import posixpath
import sys
import tarfile
import threading

import click

from ..errors import NotFound
from . import format as fmt

_MODE_DIR = 1 << 31  # Go's os.ModeDir in the path stat header


def split_cp_arg(arg):
    """``CONTAINER:PATH`` → ``(container, path)``; a local path → ``(None, path)`` (docker's splitCpArg).

    A path starting with ``/`` or ``.`` is local even when it holds a colon.
    """
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def _copies_content(path):
    return path == "." or path.endswith("/.")


def _base(path):
    return posixpath.basename(path.rstrip("/")) or "/"


def plan_copy(src, src_is_dir, dst, dst_exists, dst_is_dir):
    """Where a copy goes: the directory to extract into and the name of the tar's top entry.

    Args:
        src: the source path as given (``dir/.`` means its content).
        dst: the destination path as given.
    Returns:
        ``(directory, top_name)``; ``top_name`` is ``"."`` to put a directory's content there.
    Raises:
        UsageError: a directory onto a file, or a file into a directory that does not exist.
    """
    from .options import UsageError

    if dst_exists and dst_is_dir:
        return dst, "." if _copies_content(src) else _base(src)
    if dst_exists:
        if src_is_dir:
            raise UsageError("cannot copy directory")
        return posixpath.dirname(dst.rstrip("/")) or ".", _base(dst)
    if dst.endswith("/") and not src_is_dir:
        raise UsageError("no such directory")
    return posixpath.dirname(dst.rstrip("/")) or ".", _base(dst)


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (for ``tarfile``'s stream mode)."""

    def __init__(self, chunks):
        self._chunks, self._buf = iter(chunks), b""

    def readable(self):
        return True

    def readinto(self, b):
        while not self._buf:
            self._buf = next(self._chunks, b"")
            if not self._buf:
                return 0
        n = min(len(b), len(self._buf))
        b[:n], self._buf = self._buf[:n], self._buf[n:]
        return n


class _NoChownTar(tarfile.TarFile):
    # docker cp leaves extracted files owned by the user who copies (NoLchown).
    def chown(self, tarinfo, targetpath, numeric_owner):
        pass


def _rename_top(name, top):
    # "./a.txt" or "src/a.txt": the first component is the tar's top entry.
    rest = [p for p in name.split("/") if p][1:]
    return "/".join(([] if top == "." else [top]) + rest) or "."


def extract_here(chunks, directory, top):
    """Extract a container's tar into ``directory``, its top entry renamed ``top``.

    Returns:
        The number of bytes of file content written.
    """
    copied = 0
    reader = io.BufferedReader(_ChunkReader(chunks), 1 << 16)
    with _NoChownTar.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            member.name = _rename_top(member.name, top)
            copied += member.size if member.isfile() else 0
            kwargs = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            tar.extract(member, directory, **kwargs)
    return copied


def tar_pipe(path, top):
    """A tar of the local ``path`` (top entry named ``top``) produced by a thread into a pipe.

    Returns:
        ``(reader, errors)``: the pipe's read end, and a list the thread fills with its exception.
    """
    r, w = os.pipe()
    errors = []

    def produce():
        try:
            with os.fdopen(w, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(path, arcname=top)
        except Exception as e:  # handed back to the caller, who reports it
            errors.append(e)

    threading.Thread(target=produce, daemon=True).start()
    return os.fdopen(r, "rb"), errors


def _stat_in(client, container, path):
    """The stat of ``path`` in the container, or None when the path does not exist there."""
    try:
        return client.stat_path(container, path)
    except NotFound:
        client.inspect_container(container)  # a missing container: its own error (HEAD replies have no body)
        return None


def copy_from(app, container, src, dst, follow):
    """``cp CONTAINER:SRC DST`` (``DST`` ``-`` writes the tar to stdout)."""
    client = app.client
    if follow:
        stat = client.stat_path(container, src)
        if stat.get("linkTarget"):
            src = stat["linkTarget"]
    stat, chunks = client.get_archive(container, src)
    if dst == "-":
        for chunk in chunks:
            app.write_bytes(chunk)
        return None
    src_is_dir = bool(stat.get("mode", 0) & _MODE_DIR)
    exists = os.path.lexists(dst)
    directory, top = plan_copy(src, src_is_dir, dst, exists, os.path.isdir(dst))
    if not os.path.isdir(directory):
        app.abort("Error: no such directory: %s" % directory)
    return extract_here(chunks, directory, top)


def copy_to(app, src, container, dst, follow):
    """``cp SRC CONTAINER:DST`` (``SRC`` ``-`` reads a tar from stdin)."""
    client = app.client
    if not dst.startswith("/"):
        dst = "/" + dst  # docker: container paths are relative to its root
    stat = _stat_in(client, container, dst)
    dst_is_dir = bool(stat and stat.get("mode", 0) & _MODE_DIR)
    if src == "-":
        if not dst_is_dir:
            app.abort('Error: destination "%s:%s" must be a directory' % (container, dst))
        client.put_archive(container, dst, sys.stdin.buffer)
        return None
    if not os.path.lexists(src):
        app.abort("Error: lstat %s: no such file or directory" % os.path.abspath(src))
    local = os.path.realpath(src) if follow else src
    local_is_dir = os.path.isdir(local) and not os.path.islink(local)  # a link is copied as a link
    directory, top = plan_copy(src, local_is_dir, dst, stat is not None, dst_is_dir)
    reader, errors = tar_pipe(local, top)
    with reader:
        client.put_archive(container, directory, reader)
    if errors:
        app.abort("Error: cannot read %s: %s" % (src, errors[0]))
    if not local_is_dir:
        return os.lstat(local).st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(local) for f in files)


@click.command()
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy.")
@click.option("-a", "--archive", is_flag=True, hidden=True, help="Archive mode (not supported).")
@click.argument("source")
@click.argument("destination")
@click.pass_obj
def cp(app, follow_link, quiet, archive, source, destination):
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a directory
    destination in a container; use '-' as the destination to stream a tar archive of a
    container source to stdout.
    """
    if archive:
        app.abort("Error: cp -a (keep UID/GID) is not supported: copy without it")
    (src_c, src), (dst_c, dst) = split_cp_arg(source), split_cp_arg(destination)
    if src_c and dst_c:
        app.abort("Error: copying between containers is not supported")
    if not src_c and not dst_c:
        app.abort("Error: must specify at least one container source")
    if src_c:
        copied = copy_from(app, src_c, src, dst, follow_link)
    else:
        copied = copy_to(app, src, dst_c, dst, follow_link)
    if copied is not None and not quiet and sys.stderr.isatty():
        app.err("Successfully copied %s to %s" % (fmt.human_size(copied, 4), destination))
