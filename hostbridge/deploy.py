"""Packing the guest engine as one zipapp and deploying it to a Linux host over SSH.

The far side needs nothing but python3 (>= 3.9): the zipapp is copied by SFTP, started as a
systemd unit when the host has systemd and we are root or can sudo, else as a detached daemon
with a pidfile; ``/version`` is compared with ours on connect and an older engine is swapped
in place (images and containers live in the engine's root dir and survive).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shlex
import zipapp
import zipfile
from dataclasses import asdict, dataclass, field

from .tunnel.errors import RemoteHostError

MIN_PYTHON = (3, 9)
UNIT_NAME = "hostbridge-engine.service"
# A guest provisioned by provision/bootstrap.sh (the VM image, a Vagrant box) already has the
# engine's service: its init script runs ENGINE_LINK as root at boot (systemd or hostbridge's
# own init). Deploy then installs the versioned zipapp, points this link at it, and uses it.
PROVISIONED_INITD = "/etc/init.d/hostbridge"
PROVISIONED_DIR = "/usr/local/lib/hostbridge"
ENGINE_LINK = PROVISIONED_DIR + "/engine.pyz"
_GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: the archive's bytes depend on content only
# The zipapp's __main__.py. zipimport keeps no compiled modules, so a zipapp is compiled anew at
# every start: tens of seconds in an emulated guest. It therefore unpacks itself once beside the
# archive (``.engine.pyz.d/``, keyed by the archive's size and mtime) and runs from there, where
# Python keeps the .pyc files; if it cannot (a read-only directory), it runs from the archive.
# The unpacking is one lean pass (a new QEMU data disk pays it in every cold `up`: zipfile's
# extractall and a second copy of the compiled modules took 2-3 s there): each file written once.
_MAIN = r'''import os, sys

_EPOCH = 315532800  # zip's epoch: one mtime for every copy of the sources


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path, data, made, mtime=None):
    head = os.path.dirname(path)
    if head not in made:
        os.makedirs(head, exist_ok=True)
        made.add(head)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def _own_pyc(name):
    # The archive carries compiled modules (hostbridge.deploy: checked-hash .pyc files, valid
    # whatever the unpacked files' mtimes) as __pycache__/MOD.TAG.pyc: this Python's, or None.
    head, _, fn = name.rpartition("/__pycache__/")
    parts = fn.split(".")
    if head and len(parts) == 3 and parts[1:] == [sys.implementation.cache_tag, "pyc"]:
        return head + "/" + parts[0] + ".py"
    return None


def _placed_path(d, source):
    # importlib.util.cache_from_source under PYTHONPYCACHEPREFIX, without importing importlib.util
    head, fn = os.path.split(os.path.join(d, source))
    return os.path.join(sys.pycache_prefix, head.lstrip(os.sep), fn[:-3] + "." + sys.implementation.cache_tag + ".pyc")


def _archive(pyz):
    # (names, read(name)) of the archive's files. zipimport's table (frozen, already loaded: this
    # very file was imported by it) says where each is; the archive is read once (zipimport's
    # get_data opens it for every file: a tenth of a second more in an emulated guest), and each
    # file is checked against its local header and CRC. zipfile, whose import alone cost ~0.5 s
    # in the guest, only where zipimport's table is not what it was in Python 3.9-3.13.
    import zipimport
    import zlib
    try:
        zi = zipimport.zipimporter(pyz)
        files = zi._get_files() if hasattr(zi, "_get_files") else zi._files
        names = sorted(name.replace(os.sep, "/") for name in files)
        with open(pyz, "rb") as f:
            blob = memoryview(f.read())

        def read(name):
            _, compress, size, _, at, _, _, crc = files[name.replace("/", os.sep)]
            if blob[at:at + 4] != b"PK\x03\x04" or compress not in (0, 8):
                raise zipimport.ZipImportError("%s: no local header for %s" % (pyz, name))
            start = at + 30 + int.from_bytes(blob[at + 26:at + 28], "little") + int.from_bytes(blob[at + 28:at + 30], "little")
            data = zlib.decompress(blob[start:start + size], -15) if compress else bytes(blob[start:start + size])
            if zlib.crc32(data) != crc:
                raise zipimport.ZipImportError("%s: %s fails its CRC" % (pyz, name))
            return data
        read(names[0])  # a table not laid out as expected fails here, before anything is written
        return names, read
    except Exception:  # noqa: BLE001 -- any surprise in a private table: the public way
        import zipfile
        with zipfile.ZipFile(pyz) as zf:
            names = zf.namelist()
            data = {name: zf.read(name) for name in names}
        return names, data.__getitem__


def _place(archive, d, made):
    # Under PYTHONPYCACHEPREFIX (the QEMU guest's data disk) Python looks for compiled modules
    # below that prefix: this Python's go there (and not beside the sources). Returns how many.
    names, read = archive
    placed = 0
    for name in names:
        source = _own_pyc(name)
        if source:
            dst = _placed_path(d, source)
            _write(dst + ".tmp%d" % os.getpid(), read(name), made)
            os.replace(dst + ".tmp%d" % os.getpid(), dst)
            placed += 1
    return placed


def _place_all(archive, d, key):  # archive: a function returning _archive's pair
    # .placed: the zipapp carried this Python's compiled modules (hostbridge.deploy.harvest_pycs
    # keeps none then). The unpacked copy's .tags says which Pythons' it carries: a later start
    # under a new prefix opens the archive only when it holds this one's. A prefix that cannot
    # be written is no failure: Python compiles what it imports, as without the archive's.
    stamp = os.path.join(sys.pycache_prefix, d.lstrip(os.sep), ".placed")
    try:
        if _place(archive(), d, set()):
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            with open(stamp, "w") as f:
                f.write(key)
    except (OSError, ImportError):
        pass


def _unpacked(pyz):
    st = os.stat(pyz)
    d = os.path.join(os.path.dirname(pyz), "." + os.path.basename(pyz) + ".d")
    key = "%d %d\n" % (st.st_size, st.st_mtime_ns)
    prefix = sys.pycache_prefix
    if _read(os.path.join(d, ".stamp")) == key:
        if prefix and _read(os.path.join(prefix, d.lstrip(os.sep), ".placed")) != key \
                and sys.implementation.cache_tag in (_read(os.path.join(d, ".tags")) or "").split():
            _place_all(lambda: _archive(pyz), d, key)  # a new (or cleared) prefix
        return d
    tmp = "%s.tmp%d" % (d, os.getpid())
    _rmtree(tmp)
    archive = _archive(pyz)  # our own (hostbridge.deploy.build_zipapp): plain relative names
    made, tags = set(), set()
    for name in archive[0]:
        if name.endswith("/"):
            continue
        if "/__pycache__/" in name:
            tags.add(name.rsplit(".", 2)[-2])
            if prefix and _own_pyc(name):
                continue  # placed below the prefix, once the sources are in place
        # One mtime for every copy (zip's epoch): a module compiled in one guest is then
        # valid in any other with the same Python (hostbridge.deploy.harvest_pycs).
        _write(os.path.join(tmp, name), archive[1](name), made, None if name.endswith(".pyc") else _EPOCH)
    _write(os.path.join(tmp, ".tags"), " ".join(sorted(tags)).encode(), made)
    _write(os.path.join(tmp, ".stamp"), key.encode(), made)
    old = "%s.old%d" % (d, os.getpid())
    try:
        os.rename(d, old)
    except OSError:
        pass
    try:
        os.rename(tmp, d)
    except OSError:  # another start won the race: use its copy
        _rmtree(tmp)
    _rmtree(old)
    if prefix:
        _place_all(lambda: archive, d, key)
    return d


def _rmtree(path):
    if os.path.lexists(path):  # shutil only then: a first start need not import it
        import shutil
        shutil.rmtree(path, ignore_errors=True)


if os.path.isfile(sys.path[0]):
    try:
        # realpath: engine.pyz (the init script's link) and engine-VERSION.pyz share one copy.
        sys.path[0] = _unpacked(os.path.realpath(sys.path[0]))
    except (OSError, ImportError):  # ImportError: zipimport's ZipImportError (an unreadable entry)
        pass
from hostbridge.guest.__main__ import main
sys.exit(main())
'''
_PKG_INIT = '"""hostbridge, guest engine only (packed by hostbridge.deploy)."""\n'


def engine_version() -> str:
    """ENGINE_VERSION as written in hostbridge/guest/__init__.py."""
    with open(os.path.join(_GUEST_DIR, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^ENGINE_VERSION\s*=\s*["\']([^"\']+)["\']', f.read(), re.M)
    if not m:
        raise RemoteHostError("hostbridge/guest/__init__.py has no ENGINE_VERSION: the installation is broken")
    return m.group(1)


def version_tuple(v: str) -> tuple:
    """``"1.2.3"`` → (1, 2, 3); non-numeric parts count as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", v)[:3])


def hash_pyc(source: bytes, path: str, checked: bool = True):
    """``source`` compiled by this Python as a hash-based .pyc (valid whatever the file's mtime;
    ``checked``: Python re-hashes the source at import and recompiles a changed one), or None
    when it does not compile here."""
    import importlib.util
    from importlib import _bootstrap_external

    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return bytes(_bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=checked))


def harvest_pycs(conn, layout: "Layout", prefix: str, into: str) -> int:
    """Keep what the far side's Python compiled for the running engine under its
    PYTHONPYCACHEPREFIX ``prefix``, in ``into`` (laid out as the zipapp's ``__pycache__`` entries),
    unless the zipapp carried them already (this host's Python is that one). Those modules are
    valid in every far side with that Python (the unpacked engine's files all have one mtime),
    so ``build_zipapp(out_dir, [into])`` ships them: a host whose Python is not the guest's pays
    the engine's compilation once, not at each new machine's first start.

    Returns:
        How many compiled modules were kept (0: none to keep).
    Raises:
        RemoteHostError: the archive from the far side is unreadable. OSError: ``into`` cannot be written.
    """
    unpacked = posixpath.join(posixpath.dirname(layout.zipapp), "." + posixpath.basename(layout.zipapp) + ".d")
    # .placed: the zipapp carried this far side's compiled modules (_MAIN's _place_pycs).
    kept = 0
    for name, data in remote_pycs(conn, layout, posixpath.join(prefix, unpacked.lstrip("/")), unless=".placed"):
        parts = name.split("/")
        if parts[0] != "hostbridge":
            continue
        dest = os.path.join(into, *parts[:-1], "__pycache__", parts[-1])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + ".tmp", "wb") as f:
            f.write(data)
        os.replace(dest + ".tmp", dest)
        kept += 1
    return kept


def remote_pycs(conn, layout: "Layout", tree: str, unless: str = ""):
    """The compiled modules below ``tree`` on the far side (one tar over the connection), as
    [(path relative to ``tree``, bytes)]: [] when ``tree`` is not there, or holds ``unless``.

    Raises:
        RemoteHostError: the archive from the far side is unreadable.
    """
    import tarfile

    q = shlex.quote
    test = "[ ! -e %s ] || exit 0; " % q(unless) if unless else ""
    rc, out, _ = conn.run(_priv(layout, "cd %s 2>/dev/null || exit 0; %star -cf - ." % (q(tree), test)), timeout=60)
    if rc != 0 or not out:
        return []
    found = []
    try:
        with tarfile.open(fileobj=io.BytesIO(out)) as tar:
            for m in tar:
                name = posixpath.normpath(m.name)
                if not m.isfile() or ".." in name.split("/") or name.startswith("/") or not name.endswith(".pyc"):
                    continue
                found.append((name, tar.extractfile(m).read()))
    except (tarfile.TarError, OSError) as e:
        raise RemoteHostError("the compiled modules from %s are unreadable: %s" % (conn.target.hostname, e)) from e
    return found


def _guest_sources():
    """[(name in the zipapp, bytes)] of the engine's own modules (with the package's stub __init__)."""
    out = [("hostbridge/__init__.py", _PKG_INIT.encode())]
    for dirpath, dirnames, filenames in os.walk(_GUEST_DIR):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, os.path.dirname(_GUEST_DIR)).replace(os.sep, "/")
            with open(full, "rb") as f:
                out.append(("hostbridge/" + rel, f.read()))
    return out


def engine_digest() -> str:
    """A hash of the engine's sources (16 hex digits): what compiled modules of it are kept under,
    and the zipapp offered to the QEMU guest (steps.engine_blob). Its ``__main__.py`` counts: a new
    one must reach the guest even when the engine's modules stayed the same."""
    import hashlib

    h = hashlib.sha256(_MAIN.encode())
    for name, data in _guest_sources():
        h.update(b"%s\0%d\0" % (name.encode(), len(data)) + data)
    return h.hexdigest()[:16]


def compile_pycs(into: str) -> str:
    """The engine compiled by this host's Python, laid out in ``into`` as build_zipapp's
    ``pyc_dirs`` want it; done once (``into`` is kept per engine digest: steps.engine_pyc_dir).
    Returns ``into``."""
    import sys

    tag = sys.implementation.cache_tag
    done = os.path.join(into, ".%s.done" % tag)
    if tag is None or os.path.exists(done):
        return into
    for name, data in _guest_sources():
        pyc = hash_pyc(data, name) if name.endswith(".py") else None
        if pyc is None:
            continue
        head, base = posixpath.split(name)
        dest = os.path.join(into, *head.split("/"), "__pycache__", "%s.%s.pyc" % (base[:-3], tag))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + ".tmp", "wb") as f:
            f.write(pyc)
        os.replace(dest + ".tmp", dest)
    with open(os.path.join(into, "__main__.pyc.tmp"), "wb") as f:  # build_zipapp's __main__.pyc
        f.write(hash_pyc(_MAIN.encode(), "__main__.py"))
    os.replace(os.path.join(into, "__main__.pyc.tmp"), os.path.join(into, "__main__.pyc"))
    open(done, "w").close()
    return into


def build_zipapp(out_dir: str, pyc_dirs=(), compile_here: bool = True, tags=None) -> str:
    """Pack hostbridge/guest into ``out_dir/engine-VERSION.pyz`` (deterministic bytes for a
    given host Python).

    The archive carries each module compiled by this host's Python too (``__pycache__/*.TAG.pyc``,
    checked-hash): a far side whose python3 has the same cache tag (the QEMU guest's 3.11 on a
    3.11 host) imports them instead of compiling the engine at its first start (seconds under
    emulation); any other Python ignores them. Its ``__main__.py`` comes compiled too, as
    ``__main__.pyc`` beside it, where zipimport looks. ``pyc_dirs`` hold more compiled modules (another
    Python's from ``harvest_pycs``, or this host's from ``compile_pycs``), added as they are laid
    out there; ``compile_here=False`` compiles nothing here (then only those are shipped).
    ``tags``: the cache tags whose compiled modules of ``pyc_dirs`` are shipped (None: all; the
    QEMU guest's Python is known, and each other one's would be unpacked there for nothing).

    Returns:
        The zipapp's path. Runs as ``python3 engine.pyz CMD`` (``__main__.py`` calls
        ``hostbridge.guest.__main__.main``).
    """
    import sys

    tag = sys.implementation.cache_tag if compile_here else None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        def add(name, data):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        def add_module(name, data):
            add(name, data)
            pyc = hash_pyc(data, name) if name.endswith(".py") and tag else None
            if pyc is not None:
                head, base = posixpath.split(name)
                add(posixpath.join(head, "__pycache__", "%s.%s.pyc" % (base[:-3], tag)), pyc)

        add("__main__.py", _MAIN)
        main_pyc = hash_pyc(_MAIN.encode(), "__main__.py") if tag else None
        if main_pyc is not None:  # beside it, where zipimport looks: not compiled at every start
            add("__main__.pyc", main_pyc)
        for name, data in _guest_sources():
            add_module(name, data)
        names = set(zf.namelist())
        for top in pyc_dirs:
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for fn in sorted(filenames):
                    name = os.path.relpath(os.path.join(dirpath, fn), top).replace(os.sep, "/")
                    # __main__.pyc: compile_pycs's, this host's Python's (its name carries no tag)
                    tag_of = sys.implementation.cache_tag if name == "__main__.pyc" else fn.rsplit(".", 2)[-2]
                    if fn.endswith(".pyc") and (name.startswith("hostbridge/") or name == "__main__.pyc") \
                            and name not in names and (tags is None or tag_of in tags):
                        with open(os.path.join(dirpath, fn), "rb") as f:
                            add(name, f.read())
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "engine-%s.pyz" % engine_version())
    tmp = out + ".tmp"
    buf.seek(0)
    zipapp.create_archive(buf, tmp, interpreter="/usr/bin/env python3")
    os.replace(tmp, out)
    return out


@dataclass
class RemoteFacts:
    """What a probe of the far side found."""

    uid: int
    home: str
    python: str = ""  # "3.11.2", or "" when there is no python3
    systemd: bool = False
    sudo: bool = False
    docker: str = ""  # path of an existing docker CLI
    hostname: str = ""
    provisioned: bool = False  # provision/bootstrap.sh installed the engine's init script


_PROBE = r"""
echo uid=$(id -u); echo home=$HOME; echo hostname=$(hostname 2>/dev/null)
if command -v "$PY" >/dev/null 2>&1; then
  echo python=$("$PY" -c 'import sys;print("%d.%d.%d" % sys.version_info[:3])')
fi
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && echo systemd=1
[ "$(id -u)" != 0 ] && sudo -n true >/dev/null 2>&1 && echo sudo=1
d=$(command -v docker 2>/dev/null) && echo docker=$d
[ -x /etc/init.d/hostbridge ] && echo provisioned=1
exit 0
"""


def probe(conn, python: str = "python3") -> RemoteFacts:
    """Probe the far side (uid, python3, systemd, sudo, docker).

    Args:
        python: the far side's interpreter command.
    Raises:
        RemoteHostError: the probe itself failed (no POSIX shell).
    """
    rc, out, err = conn.run("PY=%s sh -c %s" % (shlex.quote(python), shlex.quote(_PROBE)), timeout=30)
    kv = dict(line.split("=", 1) for line in out.decode(errors="replace").splitlines() if "=" in line)
    if rc != 0 or "uid" not in kv:
        raise RemoteHostError("cannot probe %s (%s): the host needs a POSIX shell"
                              % (conn.target.hostname, err.decode(errors="replace").strip()[:200]))
    return RemoteFacts(uid=int(kv["uid"]), home=kv.get("home", ""), python=kv.get("python", ""),
                       systemd=kv.get("systemd") == "1", sudo=kv.get("sudo") == "1",
                       docker=kv.get("docker", ""), hostname=kv.get("hostname", ""),
                       provisioned=kv.get("provisioned") == "1")


def check_python(facts: RemoteFacts, host: str, python: str = "python3") -> None:
    """Raise RemoteHostError unless the far side has python3 >= 3.9."""
    if not facts.python:
        raise RemoteHostError("%s has no %s: install python3 (>= %d.%d) there, e.g. "
                              "`apt-get install python3`" % ((host, python) + MIN_PYTHON))
    if version_tuple(facts.python) < MIN_PYTHON:
        raise RemoteHostError("python3 on %s is %s; hostbridge's engine needs >= %d.%d: install a newer python3 there"
                              % ((host, facts.python) + MIN_PYTHON))


@dataclass
class Layout:
    """Where the engine lives on the far side and how it is run."""

    dir: str  # holds engine-VERSION.pyz, relay.py, bin/docker (shim)
    root: str  # the engine's --root
    socket: str  # the engine's --socket
    pidfile: str
    log: str
    start: str = "daemon"  # "systemd" | "daemon" | "initd" (the provisioned guest's service)
    sudo: bool = False  # prefix privileged commands with `sudo -n`
    version: str = ""
    shim: str = ""  # where the docker shim was installed, if it was
    python: str = "python3"  # the far side's interpreter
    extra: dict = field(default_factory=dict)

    @property
    def zipapp(self) -> str:
        return posixpath.join(self.dir, "engine-%s.pyz" % self.version)

    @property
    def relay(self) -> str:
        return posixpath.join(self.dir, "relay.py")

    @property
    def settings(self) -> str:
        """The engine's --config-file (proxies, extra CAs): written by ``write_settings``; may be absent."""
        return posixpath.join(self.root, "engine-settings.json")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(**d)


def plan_layout(facts: RemoteFacts, host: str, remote_dir: str | None = None, start: str = "auto",
                allow_rootless: bool = False, python: str = "python3") -> Layout:
    """Choose paths and the start method for the far side.

    Args:
        facts: from ``probe``.
        host: for messages.
        remote_dir: put everything under this dir (tests; hosts without /usr/local).
        start: "auto" (the provisioned service on a guest set up by provision/bootstrap.sh,
            else systemd when present and privileged), "initd", "systemd" or "daemon".
        allow_rootless: accept a user without root or sudo (containers will not run).
    Raises:
        RemoteHostError: no root and no sudo; systemd asked for but absent.
    """
    privileged = facts.uid == 0 or facts.sudo
    if not privileged and not allow_rootless:
        raise RemoteHostError("the engine needs root on %s: log in as root, or give the user "
                              "passwordless sudo (`sudo -n true` must work)" % host)
    if start == "initd" and not (facts.provisioned and privileged):
        raise RemoteHostError("%s was not provisioned by hostbridge (no %s): use another start mode"
                              % (host, PROVISIONED_INITD))
    if (start == "initd" or start == "auto" and facts.provisioned and privileged) and not remote_dir:
        # The paths provision/hostbridge.initd and hostbridge.service use.
        return Layout(dir=PROVISIONED_DIR, root="/var/lib/hostbridge", socket="/run/hostbridge/docker.sock",
                      pidfile="/run/hostbridge/engine.pid", log="/var/lib/hostbridge/engine.log", start="initd",
                      sudo=facts.uid != 0 and facts.sudo, version=engine_version(), python=python)
    if start == "systemd" and not (facts.systemd and privileged):
        raise RemoteHostError("%s has no systemd (or no root/sudo) to run the engine as a unit: "
                              "use the daemon start mode" % host)
    use_systemd = start == "systemd" or (start == "auto" and facts.systemd and privileged and not remote_dir)
    if remote_dir:
        base = remote_dir
        root, sock = posixpath.join(base, "state"), posixpath.join(base, "run", "docker.sock")
    elif privileged:
        base, root, sock = "/usr/local/lib/hostbridge", "/var/lib/hostbridge", "/run/hostbridge/docker.sock"
    else:
        base = posixpath.join(facts.home, ".hostbridge")
        root, sock = posixpath.join(base, "state"), posixpath.join(base, "run", "docker.sock")
    return Layout(dir=base, root=root, socket=sock, pidfile=posixpath.join(root, "engine.pid"),
                  log=posixpath.join(root, "engine.log"), start="systemd" if use_systemd else "daemon",
                  sudo=facts.uid != 0 and facts.sudo, version=engine_version(), python=python)


def _priv(layout: Layout, cmd: str) -> str:
    return ("sudo -n sh -c %s" % shlex.quote(cmd)) if layout.sudo else cmd


def _check(conn, cmd: str, what: str, timeout: float = 60) -> bytes:
    rc, out, err = conn.run(cmd, timeout=timeout)
    if rc != 0:
        lines = (err or out).decode(errors="replace").strip().splitlines()
        raise RemoteHostError("%s failed on %s (exit %d: %s)"
                              % (what, conn.target.hostname, rc, lines[-1] if lines else "no output"))
    return out


def _put(conn, layout: Layout, local_path: str, remote_path: str, mode: int = 0o644) -> None:
    """Copy a file by SFTP, atomically (temp name, then rename); through sudo when needed."""
    q = shlex.quote
    if layout.sudo:
        stage = posixpath.join(".hostbridge-stage", posixpath.basename(remote_path))
        _check(conn, "mkdir -p .hostbridge-stage", "creating a staging dir")
        with conn.sftp() as sftp:
            sftp.put(local_path, stage)
        _check(conn, _priv(layout, "install -D -m %o %s %s && rm -f %s" % (mode, q(stage), q(remote_path), q(stage))),
               "installing %s" % remote_path)
        return
    _check(conn, "mkdir -p %s" % q(posixpath.dirname(remote_path)), "creating %s" % posixpath.dirname(remote_path))
    tmp = remote_path + ".part"
    with conn.sftp() as sftp:
        sftp.put(local_path, tmp)
        sftp.chmod(tmp, mode)
        sftp.posix_rename(tmp, remote_path)


def remote_engine_version(conn, layout: Layout) -> str:
    """The version the deployed zipapp reports (``python3 engine.pyz version``)."""
    out = _check(conn, "%s -S %s version" % (shlex.quote(layout.python), shlex.quote(layout.zipapp)),
                 "running the engine")
    m = re.search(r"hostbridge-engine (\S+)", out.decode(errors="replace"))
    if not m:
        raise RemoteHostError("the engine on %s printed %r for `version`: redeploy it" % (conn.target.hostname, out[:100]))
    return m.group(1)


def shim_script(layout: Layout) -> str:
    """The far side's `docker` shim: serves only `docker [-H unix://S] system dial-stdio`."""
    return """#!/bin/sh
# hostbridge's docker shim: lets the stock CLI's DOCKER_HOST=ssh://... reach the hostbridge
# engine on this host. Only `docker system dial-stdio` is served.
sock=%(sock)s
while [ $# -gt 0 ]; do
  case "$1" in
    -H|--host) sock=${2#unix://}; shift 2 ;;
    --host=*) sock=${1#--host=}; sock=${sock#unix://}; shift ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ "$1" = system ] && [ "$2" = dial-stdio ]; then
  exec %(python)s -S %(relay)s "$sock"
fi
echo "this is hostbridge's docker shim: only 'docker system dial-stdio' works here; install docker for more" >&2
exit 1
""" % {"sock": shlex.quote(layout.socket), "relay": shlex.quote(layout.relay), "python": shlex.quote(layout.python)}


def shim_path(layout: Layout) -> str:
    """Where ``install_shim`` puts the docker shim by default: /usr/local/bin/docker, or DIR/bin/docker."""
    return posixpath.join(layout.dir, "bin", "docker") if layout.dir != PROVISIONED_DIR else "/usr/local/bin/docker"


def install_shim(conn, layout: Layout, path: str | None = None) -> str:
    """Install the docker shim (default /usr/local/bin/docker, or DIR/bin/docker). Returns its path."""
    import tempfile

    path = path or shim_path(layout)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(shim_script(layout))
    try:
        _put(conn, layout, f.name, path, mode=0o755)
    finally:
        os.unlink(f.name)
    layout.shim = path
    return path


def upload_engine(conn, layout: Layout, cache_dir: str, pyc_dirs=(), compile_here: bool = True) -> None:
    """Pack the engine (``pyc_dirs``, ``compile_here``: see build_zipapp) and copy it (and the
    stdio relay) to the far side; check it runs."""
    from .guest import relay

    _put(conn, layout, build_zipapp(cache_dir, pyc_dirs, compile_here), layout.zipapp)
    _put(conn, layout, relay.__file__, layout.relay)
    got = remote_engine_version(conn, layout)
    if got != layout.version:
        raise RemoteHostError("the engine copied to %s reports %s, expected %s: redeploy it"
                              % (conn.target.hostname, got, layout.version))


def unit_file(layout: Layout) -> str:
    """The systemd unit running the engine. KillMode=process: container shims outlive restarts."""
    return """[Unit]
Description=hostbridge container engine
After=network.target

[Service]
ExecStart=/usr/bin/env %s -S %s daemon --root %s --socket %s --pidfile %s --log-file %s --config-file %s
KillMode=process
Restart=on-failure

[Install]
WantedBy=multi-user.target
""" % (layout.python, layout.zipapp, layout.root, layout.socket, layout.pidfile, layout.log, layout.settings)


def remote_ca_path(layout: Layout, i: int, path: str) -> str:
    """Where the far side keeps the ``i``-th extra CA file, ``path`` on this host: ``ROOT/ca/NN-NAME``."""
    return posixpath.join(layout.root, "ca", "%02d-%s" % (i, os.path.basename(path)))


def write_settings(conn, layout: Layout, proxies: dict, ca_files=()) -> None:
    """Give the far-side engine its proxies and extra CAs (read at its next start).

    The CA files are copied to ``ROOT/ca/``; the settings file is mode 0600 (a proxy URL may
    hold a password). A provisioned guest's service (``initd``, the unit) reads it at every start.

    Args:
        proxies: ``engine_settings.proxies``'s map (http-proxy, https-proxy, no-proxy).
        ca_files: CA files on this host.
    Raises:
        RemoteHostError: a copy failed.
    """
    import json
    import tempfile

    from .engine_settings import daemon_json

    remote_cas = []
    for i, path in enumerate(ca_files):
        dest = remote_ca_path(layout, i, path)
        _put(conn, layout, path, dest)
        remote_cas.append(dest)
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".json") as f:
        json.dump(daemon_json(proxies, remote_cas), f)
    try:
        _put(conn, layout, f.name, layout.settings, mode=0o600)
    finally:
        os.unlink(f.name)


def start_engine(conn, layout: Layout, wait: float = 15) -> None:
    """Start the engine (no-op when it already runs) and wait for its socket.

    Raises:
        RemoteHostError: it did not create its socket in ``wait`` seconds (with its log's tail).
    """
    q = shlex.quote
    if layout.start == "initd":
        # The service runs ENGINE_LINK: point it at this version first (atomically).
        launch = "ln -sfn %s %s.new && mv -fT %s.new %s && %s start" % (
            q(posixpath.basename(layout.zipapp)), ENGINE_LINK, ENGINE_LINK, ENGINE_LINK, PROVISIONED_INITD)
    elif layout.start == "systemd":
        import tempfile

        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(unit_file(layout))
        try:
            _put(conn, layout, f.name, "/etc/systemd/system/" + UNIT_NAME)
        finally:
            os.unlink(f.name)
        launch = "systemctl daemon-reload && systemctl enable %s >/dev/null 2>&1; systemctl start %s" % (UNIT_NAME, UNIT_NAME)
    else:
        launch = ("if [ -f %(pid)s ] && kill -0 $(cat %(pid)s) 2>/dev/null; then p=; else "
                  "setsid nohup %(py)s -S %(pyz)s daemon --root %(root)s --socket %(sock)s --pidfile %(pid)s "
                  "--log-file %(log)s --config-file %(conf)s </dev/null >>%(out)s 2>&1 & p=$!; fi" % {
                      "conf": q(layout.settings),
                      "pid": q(layout.pidfile), "py": q(layout.python), "pyz": q(layout.zipapp), "root": q(layout.root),
                      "sock": q(layout.socket), "log": q(layout.log), "out": q(layout.log + ".out")})
    # Wait for the socket; stop waiting early when the daemon we launched has died.
    script = ("p=; mkdir -p %(root)s %(run)s && %(launch)s\n"
              "i=0; while [ $i -lt %(n)d ]; do [ -S %(sock)s ] && exit 0; "
              "if [ -n \"$p\" ] && ! kill -0 $p 2>/dev/null; then sleep 0.1; [ -S %(sock)s ] && exit 0; break; fi; "
              "sleep 0.1; i=$((i+1)); done\n"
              "tail -n 5 %(log)s %(out)s 2>/dev/null | grep -v '^==>' | grep . >&2; exit 1"
              % {"root": q(layout.root), "run": q(posixpath.dirname(layout.socket)), "launch": launch,
                 "n": int(wait * 10), "sock": q(layout.socket), "log": q(layout.log), "out": q(layout.log + ".out")})
    rc, out, err = conn.run(_priv(layout, script), timeout=wait + 30)
    if rc != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise RemoteHostError("the engine on %s did not start (%s): see %s there"
                              % (conn.target.hostname, lines[-1] if lines else "no socket at %s" % layout.socket,
                                 layout.log))


def stop_engine(conn, layout: Layout, wait: float = 15) -> None:
    """Stop the engine (containers keep running: their shims are separate processes)."""
    if layout.start == "initd":
        cmd = "%s stop" % PROVISIONED_INITD
    elif layout.start == "systemd":
        cmd = "systemctl stop %s" % UNIT_NAME
    else:
        cmd = ("[ -f %(pid)s ] || exit 0; p=$(cat %(pid)s); kill $p 2>/dev/null || exit 0; i=0; "
               "while [ $i -lt %(n)d ]; do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; "
               "kill -9 $p" % {"pid": shlex.quote(layout.pidfile), "n": int(wait * 10)})
    _check(conn, _priv(layout, cmd), "stopping the engine", timeout=wait + 30)


def deploy(conn, cache_dir: str, remote_dir: str | None = None, start: str = "auto", shim: str = "auto",
           shim_path: str | None = None, allow_rootless: bool = False, python: str = "python3",
           pyc_dirs=(), compile_here: bool = True) -> Layout:
    """Probe the far side, check python3, copy the engine (and the docker shim when needed).

    Args:
        conn: an open ``tunnel.ssh.Connection``.
        cache_dir: where the zipapp is built on this host.
        remote_dir, start, allow_rootless: see ``plan_layout``.
        shim: "auto" (when the far side has no docker), "always" or "never".
        shim_path: where to put the shim (default /usr/local/bin/docker or DIR/bin/docker).
        python: the far side's interpreter command (python3 by default).
        pyc_dirs, compile_here: compiled modules to ship (build_zipapp).
    Returns:
        The layout (save it: upgrade and rm need it).
    Raises:
        RemoteHostError: no/old python3, no root or sudo, a copy or check failed.
    """
    host = conn.target.hostname
    facts = probe(conn, python)
    check_python(facts, host, python)
    layout = plan_layout(facts, host, remote_dir, start, allow_rootless, python)
    upload_engine(conn, layout, cache_dir, pyc_dirs, compile_here)
    if shim == "always" or (shim == "auto" and not facts.docker):
        install_shim(conn, layout, shim_path)
    return layout


def upgrade(conn, layout: Layout, cache_dir: str) -> Layout:
    """Swap the engine for this host's version and restart it; the old zipapp is removed.

    Images and containers stay in ``layout.root``; running containers keep running (their
    shims are not the engine). Returns the new layout (save it).
    """
    old = Layout.from_dict(layout.to_dict())
    new = Layout.from_dict(layout.to_dict())
    new.version = engine_version()
    upload_engine(conn, new, cache_dir)
    if new.shim:
        install_shim(conn, new, new.shim)
    stop_engine(conn, old)
    # As long as `up` waits: the engine compiles its zipapp at each start (tens of seconds
    # in a VM under emulation).
    start_engine(conn, new, wait=120)
    if old.zipapp != new.zipapp:
        conn.run(_priv(new, "rm -f %s" % shlex.quote(old.zipapp)))
    return new
