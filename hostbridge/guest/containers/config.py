"""Turn a ``POST /containers/create`` body and the image's config into a container record.

The record is docker's ContainerInspect shape (what ``GET /containers/{id}/json`` returns, less
the parts computed at read time), so the API layer serves it as it is.
"""

from __future__ import annotations

import os
import re
import signal

from ..errors import InvalidParameter
from ..util import ZERO_TIME, now_rfc3339
from .logs import log_driver_known, log_limits

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# HostConfig fields that change behaviour and that this engine does not implement: refusing them
# beats running a container that silently differs from what the user asked for.
_UNSUPPORTED = {
    "DeviceRequests": "--gpus",
    "BlkioWeight": "--blkio-weight", "BlkioWeightDevice": "--blkio-weight-device",
    "BlkioDeviceReadBps": "--device-read-bps", "BlkioDeviceWriteBps": "--device-write-bps",
    "BlkioDeviceReadIOps": "--device-read-iops", "BlkioDeviceWriteIOps": "--device-write-iops",
    "CpusetMems": "--cpuset-mems", "KernelMemory": "--kernel-memory", "CpuRealtimePeriod": "--cpu-rt-period",
    "CpuRealtimeRuntime": "--cpu-rt-runtime", "Ulimits": "--ulimit",
    "UsernsMode": "--userns", "CgroupnsMode": None,
    "StorageOpt": "--storage-opt", "OomKillDisable": "--oom-kill-disable",
    "CgroupParent": "--cgroup-parent", "MaskedPaths": None, "ReadonlyPaths": None,
    "KernelMemoryTCP": None, "CpuCount": "--cpu-count", "CpuPercent": "--cpu-percent",
    "IOMaximumIOps": "--io-maxiops", "IOMaximumBandwidth": "--io-maxbandwidth",
}
# values that ask for what the engine does anyway
_ACCEPTED_NOOP = {"CgroupnsMode": ("", "private", "host"), "UsernsMode": ("", "host")}
# --security-opt values that describe this engine as it is: no LSM (seccomp=… is parsed apart)
_SECURITY_OPT_OK = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true",
                    "no-new-privileges:false", "no-new-privileges=false",
                    "apparmor=unconfined", "apparmor:unconfined", "label=disable", "label:disable"}
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory

RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


def _check_unsupported(hc):
    for field, flag in _UNSUPPORTED.items():
        v = hc.get(field)
        if field in _ACCEPTED_NOOP and (v in _ACCEPTED_NOOP[field] or v is None):
            continue
        if v not in (None, "", 0, False, [], {}):
            raise InvalidParameter("%s is not supported by the hostbridge engine (HostConfig.%s)"
                                   % (flag or field, field))
    for opt in hc.get("SecurityOpt") or []:
        if not isinstance(opt, str):
            raise InvalidParameter("invalid --security-opt: %r (HostConfig.SecurityOpt)" % (opt,))
        if opt.startswith(("seccomp=", "seccomp:")):
            continue
        if opt not in _SECURITY_OPT_OK:
            raise InvalidParameter("--security-opt %s is not supported by the hostbridge engine (it applies "
                                   "no LSM)" % (opt if len(opt) < 80 else opt[:60] + "…"))
    seccomp_spec(hc)  # a bad profile is a 400 now, not a failed start


def seccomp_spec(hc):
    """The runtime's ``process.seccomp`` for a HostConfig, as dockerd chooses it.

    ``--privileged`` and ``seccomp=unconfined`` → None (no filter); ``seccomp=PROFILE`` (the
    CLI sends the file's JSON content) → that profile, checked; otherwise ``"builtin"``, docker's
    default profile.

    Raises:
        InvalidParameter: a profile that is malformed, names an unknown syscall or lacks this
            machine's architecture (the message names the field).
    """
    from ..runtime import seccomp

    value = None
    for opt in hc.get("SecurityOpt") or []:
        if isinstance(opt, str) and opt.startswith(("seccomp=", "seccomp:")):
            value = opt[len("seccomp="):]
    if hc.get("Privileged") or value == "unconfined":
        return None
    if value is None or value == "builtin":
        return "builtin"
    try:
        return seccomp.parse(value)
    except InvalidParameter as e:
        raise InvalidParameter("%s (HostConfig.SecurityOpt seccomp=…)" % e)


_DEVICE_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
RUNTIMES = ("runc",)  # the names dockerd answers to; hostbridge runs every container its own way


def _check_accepted(hc):
    """Options dockerd accepts that change nothing here or map onto what the runtime does.

    Fills in ``Runtime`` as dockerd does (its default runtime's name), so inspect shows it.
    """
    runtime = hc.get("Runtime") or "runc"
    if runtime not in RUNTIMES:
        raise InvalidParameter("Unknown runtime specified %s" % runtime)
    hc["Runtime"] = runtime
    iso = hc.get("Isolation") or ""
    if iso.lower() not in ("", "default"):
        raise InvalidParameter("Invalid isolation: %r - linux only supports 'default'" % iso)
    sw = hc.get("MemorySwappiness")
    if sw is not None and sw != -1 and not (isinstance(sw, int) and 0 <= sw <= 100):
        raise InvalidParameter("Invalid value: %s, valid memory swappiness range is 0-100" % sw)
    for rule in hc.get("DeviceCgroupRules") or []:
        if not isinstance(rule, str) or not _DEVICE_CGROUP_RULE.match(rule):
            raise InvalidParameter("invalid device cgroup rule format: '%s'" % rule)
    for g in hc.get("GroupAdd") or []:
        if not isinstance(g, str) or not g or ":" in g:
            raise InvalidParameter("invalid group %r for --group-add" % g)


SWAPPINESS_DISCARDED = ("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
                        "Memory swappiness discarded.")  # dockerd's words


def discard_unsupported(hc, swappiness):
    """Drop what this host cannot limit, as dockerd does before it validates: its warnings.

    Args:
        hc: a HostConfig (changed in place); anything else is left to validation.
        swappiness: whether the host can apply a swappiness (``cgroups.swappiness()``).
    """
    if isinstance(hc, dict) and hc.get("MemorySwappiness") is not None and not swappiness:
        hc["MemorySwappiness"] = None
        return [SWAPPINESS_DISCARDED]
    return []


def _int(v, field):
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidParameter("invalid value for %s: %r" % (field, v))
    return int(v)


def parse_signal(value) -> int:
    """``SIGTERM``, ``TERM``, ``15`` → 15. Raises InvalidParameter for an unknown signal."""
    if value in (None, ""):
        return signal.SIGTERM
    if isinstance(value, int) or str(value).isdigit():
        n = int(value)
        if 0 < n < 65:
            return n
    else:
        name = str(value).upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        s = getattr(signal, name, None)
        if isinstance(s, signal.Signals):
            return int(s)
        if name.startswith("SIGRTMIN+") and name[9:].isdigit():
            return int(signal.SIGRTMIN) + int(name[9:])
    raise InvalidParameter("invalid signal: %s" % value)


def check_devices(devices):
    """``--device HOST[:CONTAINER[:PERMS]]``: the host path must be a device node; the node is bound
    into the container, so only read-write access (``rw``, ``rwm``) can be given as asked."""
    import os
    import stat
    for d in devices or []:
        if not isinstance(d, dict) or not d.get("PathOnHost"):
            raise InvalidParameter("--device: PathOnHost is required")
        host = d["PathOnHost"]
        try:
            mode = os.stat(host).st_mode
        except OSError as e:
            raise InvalidParameter("--device %s: error gathering device information: %s" % (host, e.strerror))
        if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            raise InvalidParameter("--device %s: not a device node on the host" % host)
        perms = d.get("CgroupPermissions") or "rwm"
        if not {"r", "w"} <= set(perms) or set(perms) - {"r", "w", "m"}:
            raise InvalidParameter("--device %s:%s: only rw or rwm access is supported"
                                   % (host, d.get("PathInContainer") or host))
        ctr = d.get("PathInContainer") or host
        if not ctr.startswith("/"):
            raise InvalidParameter("--device %s: the container path %s must be absolute" % (host, ctr))


def check_limits(hc, update=False):
    """dockerd's checks of the cgroup limits of a HostConfig, with its messages.

    Raises:
        InvalidParameter: a value the kernel would refuse or that contradicts another.
    """
    mem, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
    reservation = hc.get("MemoryReservation") or 0
    if mem and mem < _MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not mem and swap > 0 and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if reservation and reservation < _MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem and reservation > mem:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, quota, period = hc.get("NanoCpus") or 0, hc.get("CpuQuota") or 0, hc.get("CpuPeriod") or 0
    for value, name in ((period, "CPU Period"), (quota, "CPU Quota")):
        if nano > 0 and value > 0:
            raise InvalidParameter("Conflicting options: Nano CPUs and %s cannot both be set" % name)
    ncpu = os.cpu_count() or 1
    if nano > ncpu * 10 ** 9:
        raise InvalidParameter("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available"
                               % (ncpu, ncpu))
    if period and not 1000 <= period <= 1000000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def adapt_limits(hc):
    """dockerd's defaults for a new container's limits, as inspect shows them: swap as much as
    memory (MemorySwap = 2 x Memory), and no pids limit recorded for 0 or less."""
    if (hc.get("Memory") or 0) > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = 2 * hc["Memory"]
    if (hc.get("PidsLimit") or 0) <= 0:
        hc["PidsLimit"] = None


def validate_host_config(hc, update=False):
    """Check the fields of a HostConfig we act on; raise InvalidParameter naming the field.

    ``update``: ``hc`` is a running container's, merged with a docker update request.
    """
    _check_unsupported(hc)
    _check_accepted(hc)
    for f in ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "MemoryReservation"):
        v = _int(hc.get(f), f)
        if v < 0 and not (f == "MemorySwap" and v == -1):
            raise InvalidParameter("invalid value for %s: %d must not be negative" % (f, v))
    check_devices(hc.get("Devices"))
    oom = _int(hc.get("OomScoreAdj"), "OomScoreAdj")
    if not -1000 <= oom <= 1000:
        raise InvalidParameter("Invalid value %d, range for oom score adj is [-1000, 1000]" % oom)
    shm = _int(hc.get("ShmSize"), "ShmSize")
    if shm < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    check_limits(hc, update=update)
    pids = hc.get("PidsLimit")
    if pids is not None and not isinstance(pids, int):
        raise InvalidParameter("invalid value for PidsLimit: %r" % (pids,))
    rp = hc.get("RestartPolicy") or {}
    if rp.get("Name", "") not in RESTART_POLICIES:
        raise InvalidParameter("invalid restart policy '%s'" % rp.get("Name"))
    if hc.get("AutoRemove") and rp.get("Name") not in ("", "no", None):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    # NetworkMode is checked by the network manager's on_create (user networks are its records)


def merge_config(cfg, image_cfg):
    """Fill a container Config from the image's config, as docker does."""
    out = dict(cfg)
    icfg = image_cfg or {}
    env = list(icfg.get("Env") or [])
    keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for e in cfg.get("Env") or []:
        if not isinstance(e, str):
            raise InvalidParameter("invalid environment variable: %r" % (e,))
        k = e.split("=", 1)[0]
        if not k:
            raise InvalidParameter("invalid environment variable: %s" % e)
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    out["Env"] = env
    entry = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    if isinstance(entry, str):
        entry = [entry]
    if isinstance(cmd, str):
        cmd = [cmd]
    if entry is None or entry == []:
        if entry is None:
            entry = icfg.get("Entrypoint")
        if not cmd:
            cmd = icfg.get("Cmd") if cfg.get("Entrypoint") is None else cmd
    out["Entrypoint"] = entry or None
    out["Cmd"] = cmd or None
    for k in ("WorkingDir", "User", "StopSignal"):
        if not out.get(k) and icfg.get(k):
            out[k] = icfg[k]
    labels = dict(icfg.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    out["Labels"] = labels
    ports = dict(icfg.get("ExposedPorts") or {})
    ports.update(cfg.get("ExposedPorts") or {})
    if ports:
        out["ExposedPorts"] = ports
    vols = dict(icfg.get("Volumes") or {})
    vols.update(cfg.get("Volumes") or {})
    out["Volumes"] = vols or None
    if icfg.get("Healthcheck"):
        out["Healthcheck"] = merge_healthcheck(cfg.get("Healthcheck"), icfg["Healthcheck"])
    if icfg.get("OnBuild"):
        out["OnBuild"] = icfg.get("OnBuild")
    return out


def merge_healthcheck(mine, image):
    """The container's Healthcheck over the image's, as docker merges them: none given takes the
    image's; an empty Test takes the image's Test; unset (zero) durations and Retries too."""
    if not mine:
        return dict(image)
    out = dict(mine)
    if not out.get("Test"):
        out["Test"] = image.get("Test")
    for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not out.get(k) and image.get(k):
            out[k] = image[k]
    return out


def new_record(cid, name, body, image_id, image_cfg, driver):
    """A container record (docker's inspect shape) for a new container."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON body: an object is required")
    hc = body.get("HostConfig") or {}
    if not isinstance(hc, dict):
        raise InvalidParameter("HostConfig must be an object")
    validate_host_config(hc)
    cfg = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    cfg = merge_config(cfg, image_cfg)
    argv = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    if not argv:
        raise InvalidParameter("no command specified")
    if cfg.get("StopSignal"):
        parse_signal(cfg["StopSignal"])
    cfg.setdefault("Hostname", cid[:12])
    if not cfg.get("Hostname"):
        cfg["Hostname"] = cid[:12]
    for k, d in (("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
                 ("AttachStderr", False), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
                 ("WorkingDir", ""), ("OnBuild", None), ("Labels", {})):
        cfg.setdefault(k, d)
        if cfg[k] is None and d is not None:
            cfg[k] = d
    hc = dict(hc)
    hc.setdefault("NetworkMode", "bridge")
    if hc["NetworkMode"] == "default":
        hc["NetworkMode"] = "bridge"
    hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    if not hc["RestartPolicy"].get("Name"):
        hc["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": hc["RestartPolicy"].get("MaximumRetryCount", 0)}
    hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    if not (hc.get("LogConfig") or {}).get("Type"):
        # the CLI sends Type "" with the --log-opt options when no --log-driver is given
        hc["LogConfig"] = {"Type": "json-file", "Config": dict((hc.get("LogConfig") or {}).get("Config") or {})}
    for k, d in (("Binds", None), ("PortBindings", {}), ("AutoRemove", False), ("Privileged", False),
                 ("ReadonlyRootfs", False), ("CapAdd", None), ("CapDrop", None), ("Memory", 0),
                 ("MemorySwap", 0), ("NanoCpus", 0), ("CpuShares", 0), ("PidsLimit", None),
                 ("Init", None), ("Dns", []), ("ExtraHosts", None), ("Tmpfs", None),
                 ("CpusetCpus", ""), ("PidMode", ""), ("IpcMode", "private"), ("UTSMode", ""),
                 ("ShmSize", 67108864), ("OomKillDisable", False), ("SecurityOpt", None),
                 ("VolumesFrom", None), ("Mounts", None), ("CpuQuota", 0), ("CpuPeriod", 0)):
        if hc.get(k) is None:
            hc[k] = d
    adapt_limits(hc)
    log_driver_known(hc["LogConfig"]["Type"])
    log_limits(hc["LogConfig"])  # refused at create (dockerd: at start, with the same text)
    return {
        "Id": cid,
        "Created": now_rfc3339(),
        "Path": argv[0],
        "Args": argv[1:],
        "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                  "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                  "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
        "Image": image_id,
        "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": "",
        "Name": "/" + name,
        "RestartCount": 0,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": hc,
        "GraphDriver": {"Name": driver, "Data": {}},
        "Mounts": [],
        "Config": cfg,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
                            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0,
                            "IPv6Gateway": "", "MacAddress": "", "Networks": {}},
    }
