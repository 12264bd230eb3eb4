"""What a build's RUN steps run with: ``POST /build``'s network, resource and host options.

``RunOptions.from_query(query_all)`` parses and checks them before anything is built (each bad
value is an InvalidParameter naming its query parameter); the backend applies them to every RUN
container of the build (its ``net`` namespace, cgroup limits, /dev/shm, rlimits, /etc/hosts).
The query is what ``docker build`` (classic builder) and the SDK's ``images.build`` send:
``networkmode``, ``memory``, ``memswap``, ``cpushares``, ``cpusetcpus``, ``cpuperiod``,
``cpuquota``, ``shmsize`` (integers in bytes / microseconds), ``ulimits`` (JSON
``[{"Name", "Soft", "Hard"}]``), ``extrahosts`` (``host:ip``, repeated).
"""

from __future__ import annotations

import ipaddress
import re
import resource

from ..errors import InvalidParameter

# docker's ulimit names (go-units) → setrlimit resources
ULIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
           "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
           "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
           "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
           "stack": "RLIMIT_STACK", "as": "RLIMIT_AS"}

# query parameter → (HostConfig field, runtime cgroup key); values are integers
_LIMITS = (("memory", "Memory", "memory"), ("memswap", "MemorySwap", "memory_swap"),
           ("cpushares", "CpuShares", "cpu_shares"), ("cpuperiod", "CpuPeriod", "cpu_period"),
           ("cpuquota", "CpuQuota", "cpu_quota"))
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
_NETWORK_DEFAULT = ("", "default", "bridge")


class RunOptions:
    """The settings every RUN step of one build gets.

    Attributes:
        network: ``bridge`` (the default bridge, dockerd's ``default``), ``none``, ``host``, or a
            user network's name or id (checked against the engine's networks by the backend).
        cgroup: the runtime's cgroup limits (config.json's "cgroup" keys; only those set).
        shm_size: /dev/shm's size in bytes (0: the runtime's 64 MiB).
        ulimits: ``[(resource name, soft, hard)]`` (-1: unlimited).
        extra_hosts: ``[(name, ip)]`` for /etc/hosts (ip may be ``host-gateway``).
    """

    def __init__(self, network="bridge", cgroup=None, shm_size=0, ulimits=(), extra_hosts=()):
        self.network = network
        self.cgroup = dict(cgroup or {})
        self.shm_size, self.ulimits, self.extra_hosts = shm_size, list(ulimits), list(extra_hosts)

    @classmethod
    def from_query(cls, query_all: dict) -> "RunOptions":
        """Parse and check the RUN options of a ``POST /build`` query (name → all values).

        Raises:
            InvalidParameter: a bad value, with its query parameter named.
        """
        def last(name):
            return ((query_all.get(name) or [""])[-1]).strip()

        network = last("networkmode")
        network = "bridge" if network in _NETWORK_DEFAULT else network
        if network.startswith("container:"):
            raise InvalidParameter("invalid networkmode %s: sharing a container's network is not supported "
                                   "for builds; use default, none, host or a network name" % network)
        host_config, cgroup = {}, {}
        for param, field, key in _LIMITS:
            value = _integer(last(param), param, allow_minus_one=(param == "memswap"))
            if value:
                host_config[field], cgroup[key] = value, value
        cpus = last("cpusetcpus")
        if cpus:
            if not _CPUSET.match(cpus):
                raise InvalidParameter("invalid cpusetcpus %r: expected CPU numbers and ranges (0-3,5)" % cpus)
            host_config["CpusetCpus"] = cgroup["cpuset_cpus"] = cpus
        shm = _integer(last("shmsize"), "shmsize")
        host_config["ShmSize"] = shm
        from ..containers.config import validate_host_config  # dockerd's checks of the same limits
        validate_host_config(host_config)
        return cls(network, cgroup, shm, _ulimits(last("ulimits")),
                   [_extra_host(e) for e in query_all.get("extrahosts") or [] if e])


def _integer(text: str, param: str, allow_minus_one=False) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameter("invalid %s %r: expected an integer" % (param, text)) from None
    if value < 0 and not (allow_minus_one and value == -1):
        raise InvalidParameter("invalid %s %d: it must not be negative" % (param, value))
    return value


def _ulimits(text: str) -> list:
    """``[{"Name": "nofile", "Soft": 100, "Hard": 200}]`` → ``[("RLIMIT_NOFILE", 100, 200)]``."""
    if not text:
        return []
    import json
    try:
        items = json.loads(text)
    except ValueError:
        raise InvalidParameter("invalid ulimits: not JSON: %s" % text) from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidParameter("invalid ulimits: expected a JSON array of {Name, Soft, Hard}")
    out = []
    for u in items:
        if not isinstance(u, dict):
            raise InvalidParameter("invalid ulimits: expected a JSON array of {Name, Soft, Hard}")
        name, soft, hard = u.get("Name"), u.get("Soft"), u.get("Hard")
        if name not in ULIMITS or not hasattr(resource, ULIMITS[name]):
            raise InvalidParameter("invalid ulimits: unknown ulimit %r (one of %s)"
                                   % (name, ", ".join(sorted(ULIMITS))))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in (soft, hard)):
            raise InvalidParameter("invalid ulimits: %s needs integer Soft and Hard values" % name)
        if hard != -1 and (soft == -1 or soft > hard):
            raise InvalidParameter("invalid ulimits: %s's soft limit %d is above its hard limit %d"
                                   % (name, soft, hard))
        out.append((ULIMITS[name], soft, hard))
    return out


def _extra_host(entry: str) -> tuple:
    """``host:ip`` (or ``host=ip``, docker 25's form) → (host, ip)."""
    sep = "=" if "=" in entry else ":"
    name, _, ip = entry.partition(sep)
    if not name or not ip:
        raise InvalidParameter("invalid extrahosts %r: expected HOST:IP" % entry)
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise InvalidParameter("invalid extrahosts %r: %s is not an IP address" % (entry, ip)) from None
    return name, ip.strip("[]")
