"""Type checks for the JSON bodies that create and update containers, before anything acts on them.

dockerd decodes these bodies into typed Go structs, so a wrong type is a 400 naming the field
("json: cannot unmarshal string into Go struct field ... of type int64") before any work is done.
We read plain dicts, so without this table a string where a list belongs surfaces deep inside
the engine as a 500 (or worse, is silently accepted). The table mirrors the Go field types; a
field not listed is not checked (the engine ignores it or checks it where it is used).

Types: ``str``, ``int`` (no floats, no booleans), ``bool``, ``any``, ``strslice`` (a string or a
list of strings, docker's StrSlice), ``[T]`` a list of T, ``{T}`` an object whose values are T,
or a dict (a nested struct). ``null`` is accepted everywhere, as Go accepts it.
"""

from __future__ import annotations

import re

from ..errors import InvalidParameter
from ..runtime import caps, rootfs
from ..volumes.hostpaths import bind_parts

_STRS = ["str"]
_STRMAP = {"*": "str"}

_HEALTH = {"Test": _STRS, "Interval": "int", "Timeout": "int", "StartPeriod": "int", "StartInterval": "int",
           "Retries": "int"}

CONFIG = {
    "Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool", "AttachStdout": "bool",
    "AttachStderr": "bool", "ExposedPorts": {"*": "any"}, "Tty": "bool", "OpenStdin": "bool",
    "StdinOnce": "bool", "Env": _STRS, "Cmd": "strslice", "Healthcheck": _HEALTH, "ArgsEscaped": "bool",
    "Image": "str", "Volumes": {"*": "any"}, "WorkingDir": "str", "Entrypoint": "strslice",
    "NetworkDisabled": "bool", "MacAddress": "str", "OnBuild": _STRS, "Labels": _STRMAP,
    "StopSignal": "str", "StopTimeout": "int", "Shell": "strslice",
}

_THROTTLE = [{"Path": "str", "Rate": "int"}]

RESOURCES = {
    "CpuShares": "int", "Memory": "int", "NanoCpus": "int", "CgroupParent": "str", "BlkioWeight": "int",
    "BlkioWeightDevice": [{"Path": "str", "Weight": "int"}], "BlkioDeviceReadBps": _THROTTLE,
    "BlkioDeviceWriteBps": _THROTTLE, "BlkioDeviceReadIOps": _THROTTLE, "BlkioDeviceWriteIOps": _THROTTLE,
    "CpuPeriod": "int", "CpuQuota": "int", "CpuRealtimePeriod": "int", "CpuRealtimeRuntime": "int",
    "CpusetCpus": "str", "CpusetMems": "str",
    "Devices": [{"PathOnHost": "str", "PathInContainer": "str", "CgroupPermissions": "str"}],
    "DeviceCgroupRules": _STRS, "KernelMemory": "int", "KernelMemoryTCP": "int", "MemoryReservation": "int",
    "MemorySwap": "int", "MemorySwappiness": "int", "OomKillDisable": "bool", "PidsLimit": "int",
    "Ulimits": [{"Name": "str", "Hard": "int", "Soft": "int"}], "CpuCount": "int", "CpuPercent": "int",
    "IOMaximumIOps": "int", "IOMaximumBandwidth": "int",
}

_MOUNT = {"Type": "str", "Source": "str", "Target": "str", "ReadOnly": "bool", "Consistency": "str",
          "BindOptions": {"Propagation": "str", "NonRecursive": "bool", "CreateMountpoint": "bool"},
          "VolumeOptions": {"NoCopy": "bool", "Labels": _STRMAP, "Subpath": "str",
                            "DriverConfig": {"Name": "str", "Options": _STRMAP}},
          "TmpfsOptions": {"SizeBytes": "int", "Mode": "int"}}

RESTART_POLICY = {"Name": "str", "MaximumRetryCount": "int"}

HOST_CONFIG = dict(RESOURCES, **{
    "Binds": _STRS, "ContainerIDFile": "str", "LogConfig": {"Type": "str", "Config": _STRMAP},
    "NetworkMode": "str", "PortBindings": {"*": [{"HostIp": "str", "HostPort": "str"}]},
    "RestartPolicy": RESTART_POLICY, "AutoRemove": "bool", "VolumeDriver": "str", "VolumesFrom": _STRS,
    "ConsoleSize": ["int"], "Annotations": _STRMAP, "CapAdd": "strslice", "CapDrop": "strslice",
    "CgroupnsMode": "str", "Dns": _STRS, "DnsOptions": _STRS, "DnsSearch": _STRS, "ExtraHosts": _STRS,
    "GroupAdd": _STRS, "IpcMode": "str", "Cgroup": "str", "Links": _STRS, "OomScoreAdj": "int",
    "PidMode": "str", "Privileged": "bool", "PublishAllPorts": "bool", "ReadonlyRootfs": "bool",
    "SecurityOpt": _STRS, "StorageOpt": _STRMAP, "Tmpfs": _STRMAP, "UTSMode": "str", "UsernsMode": "str",
    "ShmSize": "int", "Sysctls": _STRMAP, "Runtime": "str", "Isolation": "str", "Mounts": [_MOUNT],
    "MaskedPaths": _STRS, "ReadonlyPaths": _STRS, "Init": "bool",
})

_ENDPOINT = {"IPAMConfig": {"IPv4Address": "str", "IPv6Address": "str", "LinkLocalIPs": _STRS},
             "Links": _STRS, "Aliases": _STRS, "MacAddress": "str", "DriverOpts": _STRMAP, "NetworkID": "str",
             "EndpointID": "str", "Gateway": "str", "IPAddress": "str", "DNSNames": _STRS}

CREATE = dict(CONFIG, HostConfig=HOST_CONFIG, NetworkingConfig={"EndpointsConfig": {"*": _ENDPOINT}})

UPDATE = dict(RESOURCES, RestartPolicy=RESTART_POLICY)

EXEC = {"AttachStdin": "bool", "AttachStdout": "bool", "AttachStderr": "bool", "ConsoleSize": ["int"],
        "DetachKeys": "str", "Tty": "bool", "Env": _STRS, "Cmd": "strslice", "Privileged": "bool", "User": "str",
        "WorkingDir": "str"}

EXEC_START = {"Detach": "bool", "Tty": "bool", "ConsoleSize": ["int"]}

NETWORK_CREATE = {
    "Name": "str", "CheckDuplicate": "bool", "Driver": "str", "Scope": "str", "EnableIPv4": "bool",
    "EnableIPv6": "bool", "Internal": "bool", "Attachable": "bool", "Ingress": "bool", "ConfigOnly": "bool",
    "ConfigFrom": {"Network": "str"}, "Options": _STRMAP, "Labels": _STRMAP,
    "IPAM": {"Driver": "str", "Options": _STRMAP,
             "Config": [{"Subnet": "str", "IPRange": "str", "Gateway": "str", "AuxiliaryAddresses": _STRMAP}]},
}

NETWORK_CONNECT = {"Container": "str", "EndpointConfig": _ENDPOINT, "Force": "bool"}

VOLUME_CREATE = {"Name": "str", "Driver": "str", "DriverOpts": _STRMAP, "Labels": _STRMAP}

_GO_NAMES = {"str": "string", "int": "int64", "bool": "bool", "strslice": "[]string"}


def _go_type(spec) -> str:
    if isinstance(spec, str):
        return _GO_NAMES.get(spec, spec)
    if isinstance(spec, list):
        return "[]" + _go_type(spec[0])
    if "*" in spec:
        return "map[string]" + _go_type(spec["*"])
    return "object"


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number %s" % v
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _check(value, spec, field):
    if value is None or spec == "any":
        return
    ok = True
    if spec == "str":
        ok = isinstance(value, str)
    elif spec == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 63)
    elif spec == "bool":
        ok = isinstance(value, bool)
    elif spec == "strslice":
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, "str", "%s[%d]" % (field, i))
        else:
            ok = isinstance(value, str)
    elif isinstance(spec, list):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, spec[0], "%s[%d]" % (field, i))
        else:
            ok = False
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = spec.get("*", spec.get(k))
            if sub is not None:
                _check(v, sub, "%s.%s" % (field, k) if field else k)
    else:
        ok = False
    if not ok:
        raise InvalidParameter("json: cannot unmarshal %s into field %s of type %s"
                               % (_json_type(value), field, _go_type(spec)))


def check_create(body) -> None:
    """Check the types in a ``POST /containers/create`` body; turn StrSlice strings into lists.

    docker's StrSlice fields (Cmd, Entrypoint, Shell, CapAdd, CapDrop) take ``"x"`` for
    ``["x"]``; they are rewritten in place so the engine only ever sees lists.

    Raises:
        InvalidParameter: the body is not an object, a field has the wrong JSON type (named),
            or a capability, health check or working directory is invalid.
    """
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: a container config object is required, got %s"
                               % _json_type(body))
    _check(body, CREATE, "")
    hc = body.get("HostConfig") or {}
    for obj, f in ((body, "Cmd"), (body, "Entrypoint"), (body, "Shell"), (hc, "CapAdd"), (hc, "CapDrop")):
        if isinstance(obj.get(f), str):
            obj[f] = [obj[f]]
    for f in ("CapAdd", "CapDrop"):
        for name in hc.get(f) or ():
            try:
                caps.normalize(name)
            except InvalidParameter as e:
                raise InvalidParameter("invalid HostConfig.%s: %s" % (f, e)) from None
    for key in hc.get("Sysctls") or {}:
        rootfs.check_sysctl(key, (hc.get("NetworkMode") or "") == "host", (hc.get("IpcMode") or "") == "host")
    _check_health(body.get("Healthcheck"))
    _check_values(body, hc)
    wd = body.get("WorkingDir")
    if wd and not wd.startswith("/"):
        raise InvalidParameter("the working directory '%s' is invalid, it needs to be an absolute path" % wd)


def check(body, table: dict, what: str) -> dict:
    """Check the types in a request body against ``table`` (one of this module's tables).

    Args:
        body: the decoded JSON body (None, for an empty body, is taken as ``{}``).
        table: EXEC, EXEC_START, UPDATE, NETWORK_CREATE, NETWORK_CONNECT, VOLUME_CREATE or CONFIG.
        what: what the body is, for the message ("exec config").

    Returns:
        dict: the body, StrSlice strings (``Cmd``) turned into lists.

    Raises:
        InvalidParameter: the body is not an object, or a field has the wrong JSON type (named).
    """
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: %s must be an object, got %s" % (what, _json_type(body)))
    # Go's JSON decoding matches field names case-insensitively, and clients rely on it (the
    # SDK sends exec create's "detachKeys"): take a known field under any case, as dockerd does.
    canonical = {k.lower(): k for k in table}
    for k in list(body):
        name = canonical.get(k.lower())
        if name is not None and name != k and name not in body:
            body[name] = body.pop(k)
    _check(body, table, "")
    for f, spec in table.items():
        if spec == "strslice" and isinstance(body.get(f), str):
            body[f] = [body[f]]
    return body


def _check_health(hc):
    # dockerd's validateHealthCheck, at create time rather than when the first probe runs
    if not hc:
        return
    test = hc.get("Test") or []
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidParameter("invalid Healthcheck.Test: the first element must be NONE, CMD or CMD-SHELL, "
                               "not %r" % test[0])
    for f in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = hc.get(f) or 0
        if v and v < 1000000:
            raise InvalidParameter("%s in Healthcheck cannot be less than 1ms" % f)
    if (hc.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _check_values(cfg, hc):
    # what the kernel would refuse at start (a 500 then), refused at create as dockerd does
    for f in ("Cmd", "Entrypoint", "Env", "User", "WorkingDir", "Hostname", "Domainname"):
        v = cfg.get(f)
        if any("\x00" in s for s in (v if isinstance(v, list) else [v or ""])):
            raise InvalidParameter("invalid %s: it contains a NUL byte" % f)
    if len(cfg.get("Hostname") or "") > 64:
        raise InvalidParameter("invalid hostname %r: longer than 64 characters" % cfg["Hostname"][:70])
    for f in ("CpusetCpus", "CpusetMems"):
        if hc.get(f) and not _CPUSET.match(hc[f]):
            raise InvalidParameter("invalid value %s for HostConfig.%s: use a list like 0-2,4" % (hc[f], f))
    if (hc.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    dests = [parts[1] for parts in map(bind_parts, hc.get("Binds") or []) if len(parts) >= 2]
    dests += [m.get("Target") or "" for m in hc.get("Mounts") or [] if isinstance(m, dict)]
    dests += list(hc.get("Tmpfs") or {})
    for d in dests:
        if not d.startswith("/"):
            raise InvalidParameter("invalid mount config: destination %r must be an absolute path" % d)
        if d.rstrip("/") == "":
            raise InvalidParameter("invalid mount config: destination can't be '/'")
