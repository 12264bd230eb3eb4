"""``hostbridge doctor``: one check per line, each with a verdict, the figure it saw and a fix.

Each check is a function ``(ctx) -> Result`` listed in ``CHECKS``; it never raises (a check
that cannot run says so as its figure) and is skipped (``ok=None``) where it does not apply to
the machine's mode. Checks that need a VM guest (clock drift, guest disk, accelerator, share)
belong here too, once the ``Machine`` interface can run a command in the guest; those below
work for native and remote machines. Nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import time

from .errors import HostbridgeError

MIN_FREE_BYTES = 2 << 30  # below this the engine's state dir or the image cache fails the check
MIN_FREE_RATIO = 0.05
PINGS = 5  # round trips timed through the tunnel (the median is shown)


class Result:
    """One check's outcome: ``ok`` True, False, or None (skipped), ``figure`` what was seen,
    ``fix`` what to do when it failed."""

    def __init__(self, name, ok, figure, fix=""):
        self.name, self.ok, self.figure, self.fix = name, ok, figure, fix

    def to_dict(self) -> dict:
        """The ``--json`` form."""
        return {"check": self.name, "ok": self.ok, "skipped": self.ok is None, "figure": self.figure,
                "fix": self.fix if self.ok is False else ""}


DNS_NAME = "registry-1.docker.io"  # what a pull resolves first
DNS_IMAGE = "busybox:latest"  # a local image with nslookup; the check never pulls
DNS_TIMEOUT = 20  # seconds the lookup container may take


class Context:
    """What the checks share: the config, the machine's name, record and mode, the environment.

    Args:
        config: a ``Config``.
        environ: the environment (``DOCKER_HOST``…), default ``os.environ``.
        dns_name, dns_image, dns_server: the DNS check's name to resolve, the local image it runs
            ``nslookup`` in, and a resolver to ask instead of the container's default.
    """

    def __init__(self, config, environ=None, dns_name=DNS_NAME, dns_image=DNS_IMAGE, dns_server=""):
        from .machines import record as records

        self.config = config
        self.dns_name, self.dns_image, self.dns_server = dns_name, dns_image, dns_server
        self.environ = os.environ if environ is None else environ
        self.name = config["machine"]
        self.record = records.load(self.name)
        self.mode = self.record.mode if self.record is not None else "native"
        self._endpoint = None
        self.endpoint_error = None

    @property
    def endpoint(self) -> str | None:
        """The machine's endpoint URL (its agent started if needed), None when it has none."""
        if self._endpoint is None and self.endpoint_error is None:
            from .client.endpoint import resolve_endpoint

            try:
                self._endpoint = resolve_endpoint(self.config).url
            except HostbridgeError as e:
                self.endpoint_error = str(e)
        return self._endpoint

    def up_fix(self) -> str:
        if self.mode == "native":
            return "start it with `sudo hostbridge up`"
        if self.mode == "remote":
            return "see `hostbridge tunnel status %s`; `hostbridge upgrade --machine %s` restarts the engine" % (
                self.name, self.name)
        return "start it with `hostbridge up --machine %s`" % self.name


def _ms(seconds: float) -> str:
    return "%.0f ms" % (seconds * 1000) if seconds >= 0.0095 else "%.1f ms" % (seconds * 1000)


def _get(ctx, path, timeout=10):
    from .tunnel import localhttp

    return localhttp.get_json(ctx.endpoint, path, timeout)


def check_engine(ctx) -> Result:
    """The engine answers ``/_ping`` (and its version)."""
    from .tunnel import localhttp

    if ctx.endpoint is None:
        return Result("engine", False, ctx.endpoint_error, ctx.up_fix())
    t0 = time.monotonic()
    try:
        status, body = localhttp.request(ctx.endpoint, "GET", "/_ping", 10)
    except HostbridgeError as e:
        return Result("engine", False, str(e), ctx.up_fix())
    took = time.monotonic() - t0
    if status != 200:
        return Result("engine", False, "/_ping answered %d at %s" % (status, ctx.endpoint), ctx.up_fix())
    try:
        version = _get(ctx, "/version").get("Version", "?")
    except HostbridgeError:
        version = "?"
    return Result("engine", True, "answers at %s in %s (engine %s)" % (ctx.endpoint, _ms(took), version))


def check_tunnel(ctx) -> Result:
    """A remote machine's tunnel is connected; the median of a few round trips through it."""
    if ctx.mode == "native":
        return Result("tunnel", None, "native machine: no tunnel")
    from .tunnel import control, localhttp

    st = control.tunnel_status(ctx.record.paths)
    fix = "see `hostbridge tunnel status %s` and its log %s" % (ctx.name, ctx.record.paths.agent_log)
    if st.get("state") != "connected" or ctx.endpoint is None:
        return Result("tunnel", False, "tunnel %s%s" % (st.get("state"), ": %s" % (st.get("last_error") or st.get("error"))
                                                       if st.get("last_error") or st.get("error") else ""), fix)
    times = []
    for _ in range(PINGS):
        t0 = time.monotonic()
        if not localhttp.ping(ctx.endpoint, timeout=10):
            return Result("tunnel", False, "a /_ping through the tunnel got no answer", fix)
        times.append(time.monotonic() - t0)
    times.sort()
    return Result("tunnel", True, "connected to %s, round trip %s (median of %d), %s reconnect(s)"
                  % (st.get("host") or "?", _ms(times[len(times) // 2]), PINGS, st.get("reconnects", 0)))


def check_dns(ctx) -> Result:
    """A container resolves a registry's name (``nslookup`` in a local image, as a pull would)."""
    if ctx.endpoint is None:
        return Result("dns", None, "no engine to run a container in")
    from .client import APIClient
    from .client.endpoint import parse_endpoint

    client = APIClient(parse_endpoint(ctx.endpoint), timeout=DNS_TIMEOUT + 10)
    try:
        client.inspect_image(ctx.dns_image)
    except HostbridgeError:
        return Result("dns", None, "no local image %s to run nslookup in (the check never pulls)" % ctx.dns_image)
    cmd = ["timeout", str(DNS_TIMEOUT), "nslookup", ctx.dns_name] + ([ctx.dns_server] if ctx.dns_server else [])
    host_config = {"Dns": [ctx.dns_server]} if ctx.dns_server else {}
    cid = None
    try:
        cid = client.create_container({"Image": ctx.dns_image, "Cmd": cmd, "HostConfig": host_config,
                                       "Labels": {"hostbridge.doctor": "dns"}})["Id"]
        t0 = time.monotonic()
        client.start(cid)
        code = client.wait(cid, timeout=DNS_TIMEOUT + 10).get("StatusCode")
        took = time.monotonic() - t0
        out = b"".join(data for _, data in client.logs(cid)).decode(errors="replace")
    except HostbridgeError as e:
        return Result("dns", False, "the lookup container failed: %s" % e, "see `hostbridge info` and the engine's log")
    finally:
        if cid:
            try:
                client.remove_container(cid, force=True)
            except HostbridgeError:
                pass
    via = " via %s" % ctx.dns_server if ctx.dns_server else ""
    if code == 0:
        addrs = [ln.split(":", 1)[1].strip() for ln in out.splitlines()
                 if ln.startswith("Address") and "#" not in ln and ":" in ln][:2]
        return Result("dns", True, "%s resolves in a container%s in %s (%s)" % (ctx.dns_name, via, _ms(took),
                                                                               ", ".join(addrs) or "found"))
    last = [ln for ln in out.strip().splitlines() if ln.strip()][-1:] or ["exit %s" % code]
    return Result("dns", False, "%s does not resolve in a container%s (%s)" % (ctx.dns_name, via, last[0].strip()),
                  "check the resolvers in the engine host's /etc/resolv.conf (containers get its non-loopback "
                  "ones), or give containers one with --dns")


def host_routes(path="/proc/net/route") -> list:
    """This host's IPv4 routes as (network, device), the default route left out."""
    routes = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        net = ipaddress.IPv4Network("%s/%s" % (dest, mask), strict=False)
        if net.prefixlen:
            routes.append((net, fields[0]))
    return routes


def subnet_clashes(subnets: dict, routes: list) -> list:
    """(network name, subnet, clashing route, device) for each container subnet that overlaps a
    host route other than its own bridge's (pure).

    Args:
        subnets: {network name: [subnet CIDR, …]}.
        routes: from ``host_routes``.
    """
    out = []
    for name, cidrs in sorted(subnets.items()):
        for cidr in cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if net.version != 4:
                continue
            for route, dev in routes:
                # The network's own route: exactly its subnet, on a bridge device.
                if route == net and os.path.isdir("/sys/class/net/%s/bridge" % dev):
                    continue
                if route.overlaps(net):
                    out.append((name, str(net), str(route), dev))
    return out


def check_subnets(ctx) -> Result:
    """No container subnet overlaps a route of the host (a VPN's, a LAN's)."""
    if ctx.mode != "native":
        return Result("subnets", None, "the engine's host routes are not read from here (%s machine)" % ctx.mode)
    if ctx.endpoint is None:
        return Result("subnets", None, "no engine to ask for its networks")
    try:
        nets = _get(ctx, "/networks")
    except HostbridgeError as e:
        return Result("subnets", None, "cannot list the engine's networks (%s)" % e)
    subnets = {n.get("Name", "?"): [c.get("Subnet") for c in ((n.get("IPAM") or {}).get("Config") or [])
                                    if c.get("Subnet")] for n in nets}
    clashes = subnet_clashes(subnets, host_routes())
    count = sum(len(v) for v in subnets.values())
    if clashes:
        name, net, route, dev = clashes[0]
        more = " (and %d more)" % (len(clashes) - 1) if len(clashes) > 1 else ""
        return Result("subnets", False, "network %s (%s) overlaps the host route %s via %s%s" % (name, net, route, dev, more),
                      "remove it and create it on a free range: `hostbridge network rm %s` then "
                      "`hostbridge network create --subnet 10.213.0.0/24 %s`; for the default bridge, restart "
                      "the engine (it picks a free range)" % (name, name))
    return Result("subnets", True, "%d container subnet(s), none overlaps the host's %d route(s)"
                  % (count, len(host_routes())))


def _free(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, path


def _gib(n) -> str:
    return "%.1f GiB" % (n / float(1 << 30)) if n >= (1 << 30) else "%.0f MiB" % (n / float(1 << 20))


def check_disk(ctx) -> Result:
    """Free space where the native engine keeps its state and where images are cached."""
    from . import paths

    places = [("image cache", paths.cache_dir())]
    if ctx.mode == "native":
        places.insert(0, ("engine state", ctx.config["native.root"]))
    seen, worst = [], None
    for label, path in places:
        free, total, at = _free(path)
        seen.append("%s %s free of %s" % (label, _gib(free), _gib(total)))
        if free < MIN_FREE_BYTES or (total and free < MIN_FREE_RATIO * total):
            worst = worst or (label, at, free)
    if worst:
        label, at, free = worst
        return Result("disk", False, "; ".join(seen), "free space on %s (%s: %s left): `hostbridge system prune -a`, or "
                      "move it elsewhere" % (at, label, _gib(free)))
    return Result("disk", True, "; ".join(seen))


def _known_hosts_fingerprints(path, entry) -> list:
    fps = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return fps
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and entry in parts[0].split(","):
            try:
                digest = hashlib.sha256(base64.b64decode(parts[2])).digest()
            except ValueError:
                continue
            fps.append("SHA256:" + base64.b64encode(digest).decode().rstrip("="))
    return fps


def check_host_key(ctx) -> Result:
    """The machine's SSH host key is pinned in its own known_hosts."""
    if ctx.mode == "native":
        return Result("host key", None, "native machine: no SSH")
    target = (ctx.record.fields or {}).get("ssh")
    if not target:
        return Result("host key", False, "no SSH address recorded", ctx.up_fix())
    port = int(target.get("port") or 22)
    entry = target["hostname"] if port == 22 else "[%s]:%d" % (target["hostname"], port)
    path = ctx.record.paths.known_hosts
    fps = _known_hosts_fingerprints(path, entry)
    if not fps:
        return Result("host key", False, "no key pinned for %s in %s" % (entry, path),
                      "re-add the machine and confirm its fingerprint: `hostbridge remote rm %s`, then "
                      "`hostbridge remote add %s … --accept-host-key SHA256:…`" % (ctx.name, ctx.name))
    return Result("host key", True, "%s pinned as %s" % (entry, ", ".join(fps)))


def keyring_verdict(backend) -> tuple:
    """(ok, figure) for a keyring backend: none at all or a plaintext one fails (pure)."""
    cls = type(backend)
    name = "%s.%s" % (cls.__module__, cls.__name__)
    backends = getattr(backend, "backends", None)
    if backends is not None:  # a ChainerBackend: judge what it chains
        if not backends:
            return False, "%s (no backend in it)" % name
        verdicts = [keyring_verdict(b) for b in backends]
        return all(v[0] for v in verdicts), "; ".join(v[1] for v in verdicts)
    lowered = name.lower()
    if cls.__module__ in ("keyring.backends.fail", "keyring.backends.null"):
        return False, "%s: no keyring, so registry logins cannot be stored" % name
    if "plaintext" in lowered or ("keyrings.alt.file" in lowered and "encrypted" not in lowered):
        return False, "%s keeps secrets in a plaintext file" % name
    return True, name


def check_keyring(ctx) -> Result:
    """The OS keyring backend registry logins go to (a plaintext one is flagged)."""
    try:
        import keyring

        ok, figure = keyring_verdict(keyring.get_keyring())
    except Exception as e:  # a backend that fails to load is itself the finding
        ok, figure = False, "the keyring cannot be used (%s)" % e
    return Result("keyring", ok, figure,
                  "install and unlock an OS keyring (Secret Service: gnome-keyring or KWallet; macOS Keychain and "
                  "Windows Credential Manager are built in), or set PYTHON_KEYRING_BACKEND to one")


def check_docker_cli(ctx) -> Result:
    """The stock docker CLI talks to this machine: DOCKER_HOST, else the current context."""
    from . import contexts, dockerconfig

    want = ctx.endpoint
    if want is None:
        return Result("docker CLI", None, "the machine has no endpoint to compare with")
    host = ctx.environ.get("DOCKER_HOST", "")
    mine = contexts.context_name(ctx.name)
    if host:
        if host.rstrip("/") == want.rstrip("/"):
            return Result("docker CLI", True, "DOCKER_HOST is %s" % host)
        return Result("docker CLI", False, "DOCKER_HOST is %s, not this machine's %s" % (host, want),
                      'eval "$(hostbridge env %s)", or unset DOCKER_HOST and `docker context use %s`' % (ctx.name, mine))
    try:
        current = ctx.environ.get("DOCKER_CONTEXT") or dockerconfig.load().get("currentContext") or "default"
        meta = contexts.read(current) if current != "default" else None
    except HostbridgeError as e:
        return Result("docker CLI", False, str(e), "fix the docker CLI's config")
    got = ((meta or {}).get("Endpoints", {}).get("docker", {}) or {}).get("Host") or (
        "unix:///var/run/docker.sock" if current == "default" else "?")
    if got.rstrip("/") == want.rstrip("/"):
        return Result("docker CLI", True, "docker context %s points at %s" % (current, got))
    return Result("docker CLI", False, "docker context %s points at %s, not this machine's %s" % (current, got, want),
                  "`docker context use %s` (or `hostbridge context create %s` first)" % (mine, ctx.name))


CHECKS = (check_engine, check_tunnel, check_dns, check_subnets, check_disk, check_host_key, check_keyring,
          check_docker_cli)


def run(config, environ=None, checks=CHECKS, **options) -> list:
    """Run every check for the configured machine.

    Args:
        options: ``Context``'s DNS options (dns_name, dns_image, dns_server).
    Returns:
        [Result, …] in ``checks`` order.
    """
    ctx = Context(config, environ, **options)
    out = []
    for check in checks:
        try:
            out.append(check(ctx))
        except Exception as e:  # a check must not hide the others: its crash is its finding
            out.append(Result(check.__name__[len("check_"):].replace("_", " "), False,
                              "the check itself failed: %s: %s" % (type(e).__name__, e), "report this as a bug"))
    return out


__all__ = ["Result", "Context", "CHECKS", "run", "subnet_clashes", "host_routes", "keyring_verdict"]
