"""Windows named pipes and AF_UNIX sockets through ctypes: the tunnel agent's local endpoint, the
client's ``npipe://`` transport, and the QMP socket's client.

Windows only, and never run where this was written (no Windows host there): everything
Windows-specific is looked up when first called, so the module imports on any OS, and its
pure parts (``sockaddr_un``; the names and SDDL in ``hostbridge/hostos.py``) are tested on Linux.
No paramiko here: the CLI's transport uses this module.

The pipe mirrors dockerd's own (go-winio, ``MessageMode``): a message-type pipe read as bytes,
so a zero-length message is a half-close (go-winio's ``CloseWrite``; the docker CLI sends one
when stdin ends on ``attach``/``exec``), and a zero-length read is the peer's. Its security
descriptor lets only the current user and SYSTEM open it, remote clients are refused
(``PIPE_REJECT_REMOTE_CLIENTS``), and the first instance is created with
``FILE_FLAG_FIRST_PIPE_INSTANCE`` so a pipe someone else created first under our name is an error,
never shared. Clients open it with ``SECURITY_IDENTIFICATION``: a server squatting on the name
cannot act as the user. I/O is overlapped, so one thread can read while another writes (a
synchronous handle would serialize the two and deadlock a duplex stream).
"""

from __future__ import annotations

import ctypes
import errno
import io
import socket
import struct
import time

from ..hostos import owner_only_sddl

PIPE_ACCESS_DUPLEX = 0x00000003
FILE_FLAG_OVERLAPPED = 0x40000000
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
PIPE_TYPE_MESSAGE = 0x00000004
PIPE_READMODE_BYTE = 0x00000000
PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
PIPE_UNLIMITED_INSTANCES = 255
GENERIC_READ, GENERIC_WRITE = 0x80000000, 0x40000000
OPEN_EXISTING = 3
SECURITY_SQOS_PRESENT, SECURITY_IDENTIFICATION = 0x00100000, 0x00010000
SDDL_REVISION_1 = 1
TOKEN_QUERY, TOKEN_USER_CLASS = 0x0008, 1
INFINITE, WAIT_TIMEOUT = 0xFFFFFFFF, 0x00000102
BUFFER_SIZE = 65536
PROCESS_QUERY_LIMITED_INFORMATION, STILL_ACTIVE = 0x1000, 259

ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_BROKEN_PIPE = 109
ERROR_PIPE_BUSY = 231
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_PIPE_CONNECTED = 535
ERROR_OPERATION_ABORTED = 995
ERROR_IO_PENDING = 997
_EOF_ERRORS = (ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED)

AF_UNIX = 1  # Windows 10 1803+ (afunix.h); Python's socket module does not expose it there
UNIX_PATH_MAX = 108

_API = None


class OVERLAPPED(ctypes.Structure):
    _fields_ = [("Internal", ctypes.c_void_p), ("InternalHigh", ctypes.c_void_p),
                ("Offset", ctypes.c_uint32), ("OffsetHigh", ctypes.c_uint32), ("hEvent", ctypes.c_void_p)]


class SECURITY_ATTRIBUTES(ctypes.Structure):
    _fields_ = [("nLength", ctypes.c_uint32), ("lpSecurityDescriptor", ctypes.c_void_p),
                ("bInheritHandle", ctypes.c_int)]


def _api():
    """kernel32/advapi32 with their signatures (loaded once, on Windows only)."""
    global _API
    if _API is not None:
        return _API
    if not hasattr(ctypes, "WinDLL"):
        raise OSError(errno.ENOSYS, "named pipes exist on Windows only")
    k = ctypes.WinDLL("kernel32", use_last_error=True)
    a = ctypes.WinDLL("advapi32", use_last_error=True)
    H, D, B, P = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p
    W = ctypes.c_wchar_p
    sig = {
        (k, "CreateNamedPipeW"): (H, [W, D, D, D, D, D, D, P]),
        (k, "ConnectNamedPipe"): (B, [H, P]),
        (k, "DisconnectNamedPipe"): (B, [H]),
        (k, "CreateFileW"): (H, [W, D, D, P, D, D, H]),
        (k, "WaitNamedPipeW"): (B, [W, D]),
        (k, "ReadFile"): (B, [H, P, D, P, P]),
        (k, "WriteFile"): (B, [H, P, D, P, P]),
        (k, "GetOverlappedResult"): (B, [H, P, P, B]),
        (k, "CancelIoEx"): (B, [H, P]),
        (k, "CreateEventW"): (H, [P, B, B, W]),
        (k, "WaitForSingleObject"): (D, [H, D]),
        (k, "CloseHandle"): (B, [H]),
        (k, "GetCurrentProcess"): (H, []),
        (k, "LocalFree"): (H, [H]),
        (k, "OpenProcess"): (H, [D, B, D]),
        (k, "GetExitCodeProcess"): (B, [H, P]),
        (a, "ConvertStringSecurityDescriptorToSecurityDescriptorW"): (B, [W, D, P, P]),
        (a, "OpenProcessToken"): (B, [H, D, P]),
        (a, "GetTokenInformation"): (B, [H, ctypes.c_int, P, D, P]),
        (a, "ConvertSidToStringSidW"): (B, [P, P]),
    }
    for (dll, name), (restype, argtypes) in sig.items():
        fn = getattr(dll, name)
        fn.restype, fn.argtypes = restype, argtypes
    _API = type("Win32", (), {name: staticmethod(getattr(dll, name)) for (dll, name) in sig})
    return _API


def _winerror(code: int, what: str) -> OSError:
    if code == ERROR_FILE_NOT_FOUND:
        return FileNotFoundError(errno.ENOENT, "%s: no such named pipe" % what)
    if code == ERROR_ACCESS_DENIED:
        return PermissionError(errno.EACCES, "%s: access denied" % what)
    if code in _EOF_ERRORS:
        return BrokenPipeError(errno.EPIPE, "%s: the pipe was closed" % what)
    return OSError(errno.EIO, "%s: Windows error %d" % (what, code))


def _invalid(handle) -> bool:
    return handle is None or handle in (0, ctypes.c_void_p(-1).value)


def current_user_sid() -> str:
    """The SID (``S-1-5-21-…``) of the user this process runs as.

    Raises:
        OSError: the process token cannot be read.
    """
    api = _api()
    token = ctypes.c_void_p()
    if not api.OpenProcessToken(api.GetCurrentProcess(), TOKEN_QUERY, ctypes.byref(token)):
        raise _winerror(ctypes.get_last_error(), "OpenProcessToken")
    try:
        size = ctypes.c_uint32(0)
        api.GetTokenInformation(token, TOKEN_USER_CLASS, None, 0, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        if not api.GetTokenInformation(token, TOKEN_USER_CLASS, buf, size, ctypes.byref(size)):
            raise _winerror(ctypes.get_last_error(), "GetTokenInformation")
        sid = ctypes.c_void_p.from_buffer(buf).value  # TOKEN_USER.User.Sid is its first field
        text = ctypes.c_wchar_p()
        if not api.ConvertSidToStringSidW(sid, ctypes.byref(text)):
            raise _winerror(ctypes.get_last_error(), "ConvertSidToStringSidW")
        try:
            return text.value
        finally:
            api.LocalFree(ctypes.cast(text, ctypes.c_void_p))
    finally:
        api.CloseHandle(token)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs, on Windows.

    ``os.kill(pid, 0)``, the POSIX probe, terminates the process on Windows: this asks for its
    exit code instead (STILL_ACTIVE while it runs).
    """
    api = _api()
    handle = api.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, int(pid))
    if not handle:
        return False
    code = ctypes.c_uint32()
    try:
        return bool(api.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == STILL_ACTIVE
    finally:
        api.CloseHandle(handle)


def _io(handle, start, timeout, what) -> int:
    """Run one overlapped operation ``start(overlapped_pointer) -> BOOL``; returns bytes moved.

    Raises:
        socket.timeout: it did not complete in ``timeout`` seconds (it is cancelled).
        BrokenPipeError: the other end closed the pipe.
    """
    api = _api()
    ov = OVERLAPPED()
    ov.hEvent = api.CreateEventW(None, True, False, None)
    if _invalid(ov.hEvent):
        raise _winerror(ctypes.get_last_error(), "CreateEventW")
    try:
        moved = ctypes.c_uint32(0)
        if not start(ctypes.byref(ov)):
            err = ctypes.get_last_error()
            if err == ERROR_PIPE_CONNECTED:  # ConnectNamedPipe: the client came before we asked
                return 0
            if err != ERROR_IO_PENDING:
                raise _winerror(err, what)
            ms = INFINITE if timeout is None else max(0, int(timeout * 1000))
            if api.WaitForSingleObject(ov.hEvent, ms) == WAIT_TIMEOUT:
                api.CancelIoEx(handle, ctypes.byref(ov))
                # The operation may have completed meanwhile: its result wins over the timeout.
                if api.GetOverlappedResult(handle, ctypes.byref(ov), ctypes.byref(moved), True):
                    return moved.value
                raise socket.timeout("%s timed out" % what)
        if not api.GetOverlappedResult(handle, ctypes.byref(ov), ctypes.byref(moved), True):
            raise _winerror(ctypes.get_last_error(), what)
        return moved.value
    finally:
        api.CloseHandle(ov.hEvent)


class PipeStream:
    """One connected pipe instance, with the part of a socket's interface the code uses:
    ``recv``, ``send``/``sendall``, ``shutdown`` (half-close), ``settimeout``, ``close``."""

    def __init__(self, handle, name=""):
        self.handle = handle
        self.name = name
        self.timeout = None
        self.closed = False

    def settimeout(self, timeout):
        self.timeout = timeout

    def gettimeout(self):
        return self.timeout

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` when the peer half-closed or closed."""
        api = _api()
        buf = ctypes.create_string_buffer(max(1, n))
        try:
            got = _io(self.handle, lambda ov: api.ReadFile(self.handle, buf, n, None, ov), self.timeout,
                      "reading " + self.name)
        except BrokenPipeError:
            return b""
        return buf.raw[:got]

    def send(self, data: bytes) -> int:
        api = _api()
        data = bytes(data)
        return _io(self.handle, lambda ov: api.WriteFile(self.handle, data, len(data), None, ov), self.timeout,
                   "writing " + self.name)

    def sendall(self, data: bytes) -> None:
        view = memoryview(bytes(data))
        while view:
            sent = self.send(view[:BUFFER_SIZE].tobytes())
            view = view[sent:]

    def shutdown(self, how=socket.SHUT_WR) -> None:
        """Half-close: a zero-length message, which the peer reads as end of stream."""
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self.closed:
            api = _api()
            _io(self.handle, lambda ov: api.WriteFile(self.handle, b"", 0, None, ov), self.timeout,
                "closing " + self.name)

    def makefile(self, mode="rb", buffering=None, **_):
        """A buffered reader over the pipe (``http.client`` reads replies through one)."""
        if mode not in ("r", "rb"):
            raise ValueError("a pipe stream's file is read-only ('rb')")
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        """Close the pipe; a read or write another thread has pending ends (cancelled)."""
        if not self.closed:
            self.closed = True
            api = _api()
            api.CancelIoEx(self.handle, None)
            api.CloseHandle(self.handle)


class _Reader(io.RawIOBase):
    def __init__(self, stream):
        self.stream = stream

    def readable(self):
        return True

    def readinto(self, b):
        data = self.stream.recv(len(b))
        b[:len(data)] = data
        return len(data)


class PipeListener:
    """A named pipe server only the current user (and SYSTEM) can connect to.

    Args:
        path: ``\\\\.\\pipe\\NAME``.
        sddl: its security descriptor (default: owner only, ``hostos.owner_only_sddl``).
    Raises:
        PermissionError: another process already serves that name (we never share it).
        OSError: the pipe cannot be created.
    """

    def __init__(self, path: str, sddl: str | None = None):
        api = _api()
        self.path = path
        self._sd = ctypes.c_void_p()
        sddl = sddl or owner_only_sddl(current_user_sid())
        if not api.ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1,
                                                                        ctypes.byref(self._sd), None):
            raise _winerror(ctypes.get_last_error(), "ConvertStringSecurityDescriptorToSecurityDescriptorW")
        self._sa = SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES), self._sd.value, 0)
        self._pending = None
        self._pending = self._instance(first=True)

    def _instance(self, first: bool):
        api = _api()
        mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (FILE_FLAG_FIRST_PIPE_INSTANCE if first else 0)
        handle = api.CreateNamedPipeW(self.path, mode, PIPE_TYPE_MESSAGE | PIPE_READMODE_BYTE |
                                      PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES, BUFFER_SIZE,
                                      BUFFER_SIZE, 0, ctypes.byref(self._sa))
        if _invalid(handle):
            err = ctypes.get_last_error()
            if first and err == ERROR_ACCESS_DENIED:
                raise PermissionError(errno.EADDRINUSE, "%s exists already: another process serves it" % self.path)
            raise _winerror(err, "CreateNamedPipeW %s" % self.path)
        return handle

    def accept(self, timeout: float | None = None) -> PipeStream:
        """Wait for a client; returns its stream (a fresh instance waits for the next).

        Raises:
            socket.timeout: none came in ``timeout`` seconds.
        """
        api = _api()
        handle = self._pending
        _io(handle, lambda ov: api.ConnectNamedPipe(handle, ov), timeout, "waiting on " + self.path)
        self._pending = self._instance(first=False)
        return PipeStream(handle, self.path)

    def close(self) -> None:
        api = _api()
        if self._pending is not None:
            api.CloseHandle(self._pending)
            self._pending = None
        if self._sd:
            api.LocalFree(self._sd)
            self._sd = ctypes.c_void_p()


def connect(path: str, timeout: float | None = None) -> PipeStream:
    """Open the named pipe ``path`` as a client (waiting while every instance is busy).

    Raises:
        FileNotFoundError: nothing serves that pipe.
        socket.timeout: it stayed busy for ``timeout`` seconds.
        OSError: it cannot be opened (PermissionError: another user's).
    """
    api = _api()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        handle = api.CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, None, OPEN_EXISTING,
                                 FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, None)
        if not _invalid(handle):
            stream = PipeStream(handle, path)
            stream.settimeout(timeout)
            return stream
        err = ctypes.get_last_error()
        if err != ERROR_PIPE_BUSY:
            raise _winerror(err, path)
        left = 5.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("%s stayed busy" % path)
        api.WaitNamedPipeW(path, int(min(left, 5.0) * 1000))


def sockaddr_un(path: str) -> bytes:
    """Winsock's ``sockaddr_un`` for ``path`` (family, then the NUL-terminated path; pure).

    Raises:
        ValueError: the path does not fit its 108 bytes.
    """
    raw = path.encode("utf-8")
    if not raw or len(raw) >= UNIX_PATH_MAX or b"\0" in raw:
        raise ValueError("unix socket path %r is empty or longer than %d bytes" % (path, UNIX_PATH_MAX - 1))
    return struct.pack("<H", AF_UNIX) + raw + b"\0" * (UNIX_PATH_MAX - len(raw))


def connect_unix(path: str, timeout: float | None = None) -> socket.socket:
    """Connect to an AF_UNIX socket on Windows (QEMU >= 7.2 serves QMP on one there).

    Python's socket module has no AF_UNIX on Windows: the socket is made and connected through
    ws2_32, then handed to ``socket.socket(fileno=…)``, which works with any family. Windows
    checks the socket file's ACL on connect, and the file is in the user's own profile.

    Raises:
        OSError: nothing listens there, or it is not ours to open.
    """
    if not hasattr(ctypes, "WinDLL"):
        raise OSError(errno.ENOSYS, "connect_unix is for Windows; use socket.AF_UNIX elsewhere")
    ws2 = ctypes.WinDLL("ws2_32", use_last_error=True)
    ws2.socket.restype, ws2.socket.argtypes = ctypes.c_size_t, [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    ws2.connect.restype, ws2.connect.argtypes = ctypes.c_int, [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int]
    ws2.closesocket.argtypes = [ctypes.c_size_t]
    ws2.WSAGetLastError.restype = ctypes.c_int
    addr = sockaddr_un(path)
    fd = ws2.socket(AF_UNIX, socket.SOCK_STREAM, 0)
    if fd == ctypes.c_size_t(-1).value:
        raise OSError(errno.EAFNOSUPPORT, "AF_UNIX sockets need Windows 10 1803 or newer")
    if ws2.connect(fd, addr, len(addr)) != 0:
        code = ws2.WSAGetLastError()
        ws2.closesocket(fd)
        raise OSError(errno.ECONNREFUSED, "cannot connect to %s (WSA error %d)" % (path, code))
    sock = socket.socket(fileno=fd)
    sock.settimeout(timeout)
    return sock
