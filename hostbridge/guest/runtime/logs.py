"""Container output formats: docker's json-file log lines and its multiplexed stream frames."""

from __future__ import annotations

import json
import os
import struct

from .. import util

STDIN, STDOUT, STDERR = 0, 1, 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
PARTIAL_MAX = 16 * 1024  # docker flushes a line without a newline once it reaches 16K


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame: stream byte, three zeros, big-endian length, payload."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def log_line(stream: int, text: bytes, time: str | None = None) -> bytes:
    """One json-file record for ``text`` (which keeps its trailing newline, if any)."""
    rec = {"log": text.decode("utf-8", "replace"), "stream": STREAM_NAMES[stream],
           "time": time or util.now_rfc3339()}
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class JsonLogWriter:
    """Appends docker json-file records to ``path``, splitting output into lines per stream.

    Args:
        path: the log file (created 0640).
        max_size: when > 0, the file is rotated before a write once it has reached it (docker's
            ``max-size``: a file may pass it by the one record that reached it).
        max_file: how many files to keep (docker's ``max-file``): ``path``, ``path.1`` … the
            oldest is dropped; 1 truncates ``path`` instead.
    """

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1):
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._partial = {STDOUT: b"", STDERR: b""}
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: int, data: bytes) -> None:
        """Record output ``data`` of ``stream``; complete lines are written at once."""
        buf = self._partial[stream] + data
        out = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            out.append(log_line(stream, buf[: nl + 1]))
            buf = buf[nl + 1:]
        while len(buf) >= PARTIAL_MAX:
            out.append(log_line(stream, buf[:PARTIAL_MAX]))
            buf = buf[PARTIAL_MAX:]
        self._partial[stream] = buf
        if out:
            self._emit(out)

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _emit(self, records: list) -> None:
        """Write whole records, rotating before one once the file has reached ``max_size``."""
        if self.max_size <= 0:
            os.write(self._fd, b"".join(records))
            return
        i = 0
        while i < len(records):
            if self._size >= self.max_size:
                self._rotate()
            j, size = i, self._size
            while j < len(records) and size < self.max_size:  # a run that fits, in one write
                size += len(records[j])
                j += 1
            data = b"".join(records[i:j])
            os.write(self._fd, data)
            self._size += len(data)
            i = j

    def _rotate(self) -> None:
        """docker's rotation: ``path.N-2`` → ``path.N-1`` … ``path`` → ``path.1``, a new ``path``."""
        if self.max_file <= 1:
            os.ftruncate(self._fd, 0)
        else:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else "%s.%d" % (self.path, i - 1)
                try:
                    os.replace(src, "%s.%d" % (self.path, i))
                except FileNotFoundError:
                    pass
            os.close(self._fd)
            self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        """Write any unfinished lines (as docker does at exit) and close the file."""
        for stream, buf in self._partial.items():
            if buf:
                self._emit([log_line(stream, buf)])
            self._partial[stream] = b""
        os.close(self._fd)


def read_log(path: str) -> list:
    """Parse a json-file log into ``[{"log", "stream", "time"}, …]`` (for readers and tests)."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out
