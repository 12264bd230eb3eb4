"""Container links (``--link TARGET[:ALIAS]``), as dockerd treats them.

- On a user network the link is an alias: ALIAS resolves to TARGET for the linking container
  only (``EndpointSettings.Links``, where the CLI puts it). ``HostConfig.Links`` is dropped
  there, as dockerd drops it. Nothing else changes.
- On the default bridge it is a *legacy* link: ``HostConfig.Links`` holds
  ``/TARGET:/CONTAINER/ALIAS``, the target must run when the container starts, its address goes
  into /etc/hosts as ``IP ALIAS TARGET``, and the environment carries ``ALIAS_NAME``,
  ``ALIAS_PORT…`` and ``ALIAS_ENV_…`` (moby's links.go). ``DELETE /containers/CONTAINER/ALIAS?link=1``
  removes one.
"""

from __future__ import annotations

from ..errors import Conflict, InvalidParameter, NotFound


def parse(spec: str) -> tuple:
    """``"t:a"``, ``"t"`` or dockerd's stored ``"/t:/c/a"`` → ``(target, alias)``.

    Raises:
        InvalidParameter: an empty target.
    """
    target, _, alias = (spec or "").partition(":")
    target = target.strip("/")
    alias = alias.rstrip("/").rsplit("/", 1)[-1] if alias else target
    if not target:
        raise InvalidParameter("invalid link %r: use CONTAINER[:ALIAS]" % spec)
    return target, alias


def check_create(c, get) -> None:
    """Legacy links at create: every target must exist; store them as dockerd shows them.

    Args:
        c: the new container (on the default bridge); its ``HostConfig.Links`` is rewritten.
        get: ``get(ref)`` → a container record, raising NotFound.
    Raises:
        InvalidParameter: a bad link or a target that does not exist (dockerd's words).
    """
    out = []
    for spec in c.host_config.get("Links") or []:
        target, alias = parse(spec)
        try:
            t = get(target)
        except NotFound:
            raise InvalidParameter("could not get container for %s: No such container: %s" % (target, target))
        out.append("/%s:/%s/%s" % (t.name, c.name, alias))
    if out:
        c.host_config["Links"] = out


def legacy(c, get) -> list:
    """The default-bridge links of ``c`` whose target still exists: ``[(alias, target record)]``."""
    out = []
    for spec in c.host_config.get("Links") or []:
        target, alias = parse(spec)
        try:
            out.append((alias, get(target)))
        except NotFound:
            continue
    return out


def check_start(c, get) -> None:
    """dockerd refuses to start a container whose legacy link target is not running.

    Raises:
        Conflict: its words, naming the link.
    """
    for alias, t in legacy(c, get):
        if not t.running:
            raise Conflict("Cannot link to a non running container: /%s AS /%s/%s" % (t.name, c.name, alias))


def env(c, get) -> list:
    """The legacy links' environment variables (moby's ``Link.ToEnv``)."""
    out = []
    for alias, t in legacy(c, get):
        ip = (((t.data.get("NetworkSettings") or {}).get("Networks") or {}).get("bridge") or {}).get("IPAddress")
        if not ip:
            continue
        prefix = alias.upper().replace("-", "_")
        ports = sorted(((int(k.split("/")[0]), (k.split("/") + ["tcp"])[1])
                        for k in (t.config.get("ExposedPorts") or {}) if k.split("/")[0].isdigit()))
        if ports:
            out.append("%s_PORT=%s://%s:%d" % (prefix, ports[0][1], ip, ports[0][0]))
        for port, proto in ports:
            key = "%s_PORT_%d_%s" % (prefix, port, proto.upper())
            out += ["%s=%s://%s:%d" % (key, proto, ip, port), "%s_ADDR=%s" % (key, ip),
                    "%s_PORT=%d" % (key, port), "%s_PROTO=%s" % (key, proto)]
        out.append("%s_NAME=/%s/%s" % (prefix, c.name, alias))
        for e in t.config.get("Env") or []:
            name, sep, value = e.partition("=")
            if sep and name not in ("HOME", "PATH"):  # moby skips what every image sets
                out.append("%s_ENV_%s=%s" % (prefix, name, value))
    return out


def on_default_bridge(hc) -> bool:
    """Whether links of this HostConfig are legacy links (the default bridge)."""
    return (hc.get("NetworkMode") or "bridge") in ("bridge", "default")


def start_env(c, get) -> list:
    """At start: refuse a stopped legacy link target; the variables the links add to the env."""
    if not on_default_bridge(c.host_config) or not c.host_config.get("Links"):
        return []
    check_start(c, get)
    return env(c, get)


def remove(c, alias) -> None:
    """``DELETE /containers/C/ALIAS?link=1``: drop one legacy link of ``c``.

    Raises:
        NotFound: ``c`` has no such link (dockerd's "No such container: C/ALIAS").
    """
    kept = [s for s in c.host_config.get("Links") or [] if parse(s)[1] != alias]
    if len(kept) == len(c.host_config.get("Links") or []):
        raise NotFound("No such container: %s/%s" % (c.name, alias))
    c.host_config["Links"] = kept or None
