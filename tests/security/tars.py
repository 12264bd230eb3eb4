"""Tars for the attempts, built in memory from (name, kind, arg[, mode]) members."""

import io
import tarfile


def tar_of(members, base=None):
    """A tar of members after those of the tar file ``base`` (if any).

    Each member is ``(name, kind, arg)`` or ``(name, kind, arg, mode)``; kind is ``file`` (arg:
    bytes), ``dir`` (arg: None) or ``sym`` (arg: the link target). mtime is fixed.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        if base:
            with tarfile.open(base) as src:
                for m in src:
                    t.addfile(m, src.extractfile(m) if m.isreg() else None)
        for name, kind, arg, *mode in members:
            ti = tarfile.TarInfo(name)
            ti.mode = mode[0] if mode else (0o755 if kind == "dir" else 0o644)
            ti.mtime = 12345
            if kind == "file":
                ti.size = len(arg)
                t.addfile(ti, io.BytesIO(arg))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE}[kind]
            if kind == "sym":
                ti.linkname = arg
            t.addfile(ti)
    return buf.getvalue()
