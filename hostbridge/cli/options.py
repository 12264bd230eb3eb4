"""Parsing docker's option values into the Engine API's JSON (pure functions).

The CLI commands call these; each raises ``UsageError`` (a ``HostbridgeError``) with a one-line
message naming the bad value.
"""

from __future__ import annotations

import os
import re

from ..errors import HostbridgeError


class UsageError(HostbridgeError):
    """A flag's value is malformed (exit 125, as docker's flag errors)."""

    exit_code = 125


def parse_filters(values):
    """``["status=exited", "label=a=b"]`` → ``{"status": ["exited"], "label": ["a=b"]}``.

    Raises:
        UsageError: a filter without ``=``.
    """
    out = {}
    for v in values or ():
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise UsageError("bad format of filter (expected name=value): %r" % v)
        out.setdefault(key.strip().lower(), []).append(val)
    return out


def parse_env_file(path, environ=None):
    """Read a docker env file: ``KEY=value`` lines, ``#`` comments, bare ``KEY`` from the environment.

    Args:
        path: the file.
        environ: where bare names are looked up (``os.environ``).
    Returns:
        ``["KEY=value", …]`` in file order (bare names missing from the environment are dropped).
    Raises:
        UsageError: unreadable file, or a name containing whitespace.
    """
    environ = os.environ if environ is None else environ
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError("cannot read env file %s: %s" % (path, e.strerror or e))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("env file %s is not valid UTF-8" % path)
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not name:
            raise UsageError("%s line %d: no variable name" % (path, n))
        if re.search(r"\s", name):
            raise UsageError("%s line %d: variable %r contains whitespaces" % (path, n, name))
        if sep:
            out.append("%s=%s" % (name, value))
        elif name in environ:
            out.append("%s=%s" % (name, environ[name]))
    return out


def parse_env(values, environ=None):
    """``-e`` values: ``KEY=value`` kept; bare ``KEY`` taken from the environment (dropped if unset)."""
    environ = os.environ if environ is None else environ
    out = []
    for v in values or ():
        if "=" in v:
            if v.startswith("="):
                raise UsageError("invalid environment variable: %s" % v)
            out.append(v)
        elif v in environ:
            out.append("%s=%s" % (v, environ[v]))
    return out


_RAM = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$", re.I)


def parse_bytes(value):
    """Docker's RAMInBytes: ``512m`` → 536870912 (binary units, ``b``/``k``/``m``/``g``/``t``/``p``).

    Raises:
        UsageError: not a size.
    """
    m = _RAM.match(str(value).strip())
    if not m:
        raise UsageError("invalid size: %r (use a number with an optional unit: b, k, m, g)" % value)
    mult = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * mult)


def parse_cpus(value):
    """``--cpus 1.5`` → NanoCpus 1500000000."""
    try:
        cpus = float(value)
    except ValueError:
        raise UsageError("invalid value for --cpus: %r (a number, e.g. 1.5)" % value)
    if cpus < 0:
        raise UsageError("invalid value for --cpus: %r (must be positive)" % value)
    return int(round(cpus * 1e9))


def parse_labels(values):
    """``-l k=v`` / ``-l k`` → ``{"k": "v"}`` / ``{"k": ""}``."""
    out = {}
    for v in values or ():
        k, _, val = v.partition("=")
        if not k:
            raise UsageError("invalid label: %r (use key=value)" % v)
        out[k] = val
    return out


def parse_restart(value):
    """``no | always | unless-stopped | on-failure[:N]`` → a RestartPolicy dict."""
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise UsageError("invalid restart policy %r (no, always, unless-stopped, on-failure[:N])" % value)
    if count and name != "on-failure":
        raise UsageError("maximum retry count cannot be used with restart policy %r" % name)
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise UsageError("invalid restart policy %r: the retry count must be a number" % value)
    return {"Name": name, "MaximumRetryCount": retries}


def _port_range(text, spec):
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first), int(last) if sep else int(first)
    except ValueError:
        raise UsageError("invalid port %r in %r" % (text, spec))
    if not 0 < lo <= hi < 65536:
        raise UsageError("invalid port range %r in %r" % (text, spec))
    return lo, hi


def parse_port(spec):
    """``[ip:][hostPort:]containerPort[/proto]``, ports or equal-sized ranges (``8000-8001:80-81``).

    Returns:
        ``[("80/tcp", {"HostIp": ip, "HostPort": "8080"}), …]``, one pair per container port.
    Raises:
        UsageError: a malformed spec.
    """
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise UsageError("invalid protocol %r in port %r" % (proto, spec))
    ip = ""
    if body.startswith("["):
        end = body.find("]")
        ip, body = body[1:end], body[end + 2:]
    parts = body.rsplit(":", 2) if not ip else body.split(":")
    if len(parts) == 3:
        ip, host, cport = parts
    elif len(parts) == 2:
        host, cport = parts
    else:
        host, cport = "", parts[0]
    if not cport:
        raise UsageError("no container port in %r" % spec)
    clo, chi = _port_range(cport, spec)
    hosts = [""] * (chi - clo + 1)
    if host:
        hlo, hhi = _port_range(host, spec)
        if hhi - hlo != chi - clo:
            raise UsageError("invalid ranges in %r: the host and container ranges must have the same size" % spec)
        hosts = [str(h) for h in range(hlo, hhi + 1)]
    return [("%d/%s" % (c, proto), {"HostIp": ip, "HostPort": h}) for c, h in zip(range(clo, chi + 1), hosts)]


def parse_volume(spec, cwd=None, windows=None):
    """``-v src:dst[:opts]`` → ``("bind", "src:dst[:opts]")``; ``-v /dst`` → ``("anonymous", "/dst")``.

    A relative source (``./data``) becomes absolute, as the docker CLI does. On a Windows host
    (``windows``; default: this host) a drive letter's colon belongs to the source
    (``C:\\Users\\x:/x``), which is sent as written: the engine translates it
    (guest/volumes/hostpaths.py, whose splitting this shares).
    """
    from ..guest.volumes.hostpaths import split_bind
    from ..hostos import WINDOWS, host_system

    parts = split_bind(spec, windows=host_system() == WINDOWS if windows is None else windows)
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise UsageError("invalid volume %r: the container path must be absolute" % spec)
        return "anonymous", spec
    if len(parts) > 3:
        raise UsageError("invalid volume specification %r (use src:dst[:ro])" % spec)
    src = parts[0]
    if src.startswith("."):
        src = os.path.abspath(os.path.join(cwd or os.getcwd(), src))
    if not parts[1].startswith("/"):
        raise UsageError("invalid volume %r: the container path must be absolute" % spec)
    return "bind", ":".join([src] + parts[1:])


def parse_timestamp(value, now=None):
    """``--since``/``--until``: a UNIX time, an RFC 3339 date, or a duration (``10m``, ``1h30m``) ago.

    Read by the engine's own parser (guest/durations.py, stdlib only), so that the CLI and
    the API take the same values.
    """
    if value is None:
        return None
    if re.match(r"^\d+(\.\d+)?$", value):
        return value  # sent as given, as docker's CLI does
    from ..guest.durations import parse_timestamp as docker_timestamp
    from ..guest.errors import InvalidParameter

    try:
        return "%d" % int(docker_timestamp(value, now))
    except InvalidParameter:
        raise UsageError("invalid time %r (use a duration like 10m, a UNIX time, or 2024-01-02T15:04:05Z)"
                         % value) from None


_TRUE, _FALSE = ("", "1", "true", "yes"), ("0", "false", "no")


def parse_mount(spec):
    """``--mount type=bind,source=/a,target=/b,readonly`` → a docker Mount dict.

    Keys as docker's: ``type`` (bind, volume, tmpfs; default volume), ``source``/``src``,
    ``target``/``destination``/``dst``, ``readonly``/``ro``, ``bind-propagation``,
    ``volume-nocopy``, ``volume-label``, ``volume-driver``, ``volume-opt``, ``tmpfs-size``, ``tmpfs-mode``.

    Raises:
        UsageError: an unknown key, a bad value, or no target.
    """
    mount = {"Type": "volume"}
    extra = {}
    for field in [f for f in spec.split(",") if f]:
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy"):
            if value.lower() not in _TRUE + _FALSE:
                raise UsageError("invalid value for %s in --mount %r: %r (true or false)" % (key, spec, value))
            flag = value.lower() in _TRUE
            if key == "volume-nocopy":
                extra.setdefault("VolumeOptions", {})["NoCopy"] = flag
            else:
                mount["ReadOnly"] = flag
            continue
        if not sep:
            raise UsageError("invalid field %r in --mount %r: must be a key=value pair" % (field, spec))
        if key == "type":
            if value not in ("bind", "volume", "tmpfs"):
                raise UsageError("invalid mount type %r in --mount %r (bind, volume or tmpfs)" % (value, spec))
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key == "bind-propagation":
            extra.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-label":
            k, _, v = value.partition("=")
            extra.setdefault("VolumeOptions", {}).setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            extra.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            extra.setdefault("VolumeOptions", {}).setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            extra.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_bytes(value)
        elif key == "tmpfs-mode":
            try:
                extra.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
            except ValueError:
                raise UsageError("invalid tmpfs-mode %r in --mount %r (an octal mode like 1777)" % (value, spec))
        else:
            raise UsageError("unexpected key %r in --mount %r" % (key, spec))
    if not mount.get("Target"):
        raise UsageError("target is required in --mount %r (e.g. target=/data)" % spec)
    mount.update(extra)
    return mount


def parse_tmpfs(spec):
    """``--tmpfs /run[:opts]`` → ``("/run", "opts")``."""
    path, _, opts = spec.partition(":")
    if not path.startswith("/"):
        raise UsageError("invalid --tmpfs %r: the container path must be absolute" % spec)
    return path, opts


def parse_add_host(spec):
    """``--add-host name:ip`` (or ``name=ip``) → ``"name:ip"`` as the engine's ExtraHosts wants it."""
    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    if not name or not ip:
        raise UsageError("invalid argument %r for --add-host: use host:ip" % spec)
    return "%s:%s" % (name, ip)
