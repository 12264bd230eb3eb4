"""Dockerfile-style changes applied to an image config (``docker import -c``, ``commit -c``)."""

from __future__ import annotations

import json
import posixpath
import shlex

from ..errors import InvalidParameter


def _exec_form(rest: str):
    """A JSON array of strings, or the shell form wrapped in ``/bin/sh -c``."""
    if rest.startswith("["):
        try:
            v = json.loads(rest)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    return ["/bin/sh", "-c", rest]


def _pairs(instr: str, rest: str) -> list:
    """``K=V K2="v 2"`` pairs, or the legacy ``K some value`` form."""
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidParameter("%s %s: %s" % (instr, rest, e))
    if words and "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise InvalidParameter("%s names %r: expected KEY=VALUE" % (instr, w))
        out.append((k, v))
    return out


def _ports(rest: str) -> list:
    out = []
    for spec in rest.split():
        port, _, proto = spec.partition("/")
        lo, _, hi = port.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise InvalidParameter("EXPOSE %s: invalid port" % spec)
        for p in range(int(lo), int(hi or lo) + 1):
            out.append("%d/%s" % (p, (proto or "tcp").lower()))
    return out


def apply(config, changes) -> dict:
    """Return a copy of container config ``config`` with each change line applied.

    Args:
        config: the image's ``config`` object (may be None).
        changes: lines such as ``CMD ["sh"]``, ``ENV A=1``, ``EXPOSE 80/udp``.

    Raises:
        InvalidParameter: an unknown instruction (docker's ``X is not a valid change command``)
        or a malformed argument.
    """
    cfg = dict(config or {})
    for line in changes or []:
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        instr, rest = parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")
        if instr in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if instr == "CMD" else "Entrypoint"] = _exec_form(rest)
        elif instr == "ENV":
            env = list(cfg.get("Env") or [])
            for k, v in _pairs(instr, rest):
                env = [e for e in env if e.split("=", 1)[0] != k] + ["%s=%s" % (k, v)]
            cfg["Env"] = env
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(instr, rest))
            cfg["Labels"] = labels
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = posixpath.join(cfg.get("WorkingDir") or "/", rest)
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            ports.update((p, {}) for p in _ports(rest))
            cfg["ExposedPorts"] = ports
        elif instr == "USER":
            cfg["User"] = rest
        elif instr == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            paths = _exec_form(rest) if rest.startswith("[") else rest.split()
            if paths[:2] == ["/bin/sh", "-c"]:
                raise InvalidParameter("VOLUME %s: expected a JSON array or paths" % rest)
            vols.update((p, {}) for p in paths)
            cfg["Volumes"] = vols
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        elif instr == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
        else:
            raise InvalidParameter("%s is not a valid change command" % parts[0])
    return cfg
