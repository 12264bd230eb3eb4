"""``hostbridge doctor``: one check per line, each with a verdict, the figure it saw and a fix.

Each check is a function ``(ctx) -> Result`` listed in ``CHECKS``; it never raises (a check
that cannot run says so as its figure) and is skipped (``ok=None``) where it does not apply to
the machine's mode. A VM's guest is asked over SSH (``Context.guest_run``: the machine's own
key, its pinned host key) for its clock, disk, routes and shares. Nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import posixpath
import shlex
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
        self._guest = None
        self.guest_error = None

    def guest_run(self, command: str, timeout=60) -> tuple:
        """Run a shell command in a VM machine's guest over SSH (one connection per doctor run).

        Returns:
            (exit status, stdout text, stderr text).
        Raises:
            HostbridgeError: the guest cannot be reached.
        """
        if self._guest is None:
            if self.guest_error:
                raise HostbridgeError(self.guest_error)
            from .machines import vmmode

            try:
                if not (self.record.fields or {}).get("ssh"):
                    raise HostbridgeError("machine %s was never started" % self.name)
                self._guest = vmmode.connection(self.record).open()
            except Exception as e:  # paramiko's own errors too: the finding is that SSH fails
                self.guest_error = "cannot reach the guest over SSH: %s" % e
                raise HostbridgeError(self.guest_error) from None
        rc, out, err = self._guest.run(command, timeout=timeout)
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self):
        if self._guest is not None:
            self._guest.close()
            self._guest = None

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
    try:
        with open(path) as f:
            return parse_routes(f.read())
    except OSError:
        return []


def parse_routes(text: str) -> list:
    """``/proc/net/route``'s text → [(network, device)], the default route left out (pure)."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        net = ipaddress.IPv4Network("%s/%s" % (dest, mask), strict=False)
        if net.prefixlen:
            routes.append((net, fields[0]))
    return routes


def subnet_clashes(subnets: dict, routes: list, bridges=None) -> list:
    """(network name, subnet, clashing route, device) for each container subnet that overlaps a
    host route other than its own bridge's (pure but for reading this host's bridges).

    Args:
        subnets: {network name: [subnet CIDR, …]}.
        routes: from ``host_routes``.
        bridges: the bridge devices of the engine's host (None: this host's, from /sys).
    """
    if bridges is None:
        bridges = {dev for _, dev in routes if os.path.isdir("/sys/class/net/%s/bridge" % dev)}
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
                if route == net and dev in bridges:
                    continue
                if route.overlaps(net):
                    out.append((name, str(net), str(route), dev))
    return out


GUEST_ROUTES = "cat /proc/net/route; echo --; for d in /sys/class/net/*/bridge; do basename \"${d%/bridge}\"; done"


def _engine_host_routes(ctx) -> tuple:
    """(routes, bridge devices or None for this host's) of the host the engine runs on.

    Raises:
        HostbridgeError: a VM's guest cannot be asked.
    """
    if ctx.mode == "native":
        return host_routes(), None
    rc, out, err = ctx.guest_run(GUEST_ROUTES)
    table, _, bridges = out.partition("--\n")
    if rc != 0 or not table.strip():
        raise HostbridgeError("reading the guest's routes failed: %s" % (err.strip() or "exit %d" % rc))
    return parse_routes(table), set(bridges.split())


def check_subnets(ctx) -> Result:
    """No container subnet overlaps a route of the engine's host (a VPN's, a LAN's)."""
    if ctx.mode == "remote":
        return Result("subnets", None, "the engine's host routes are not read from here (%s machine)" % ctx.mode)
    if ctx.endpoint is None:
        return Result("subnets", None, "no engine to ask for its networks")
    try:
        routes, bridges = _engine_host_routes(ctx)
    except HostbridgeError as e:
        return Result("subnets", False, str(e), ctx.up_fix())
    try:
        nets = _get(ctx, "/networks")
    except HostbridgeError as e:
        return Result("subnets", None, "cannot list the engine's networks (%s)" % e)
    subnets = {n.get("Name", "?"): [c.get("Subnet") for c in ((n.get("IPAM") or {}).get("Config") or [])
                                    if c.get("Subnet")] for n in nets}
    clashes = subnet_clashes(subnets, routes, bridges)
    count = sum(len(v) for v in subnets.values())
    where = "guest" if ctx.mode == "vm" else "host"
    if clashes:
        name, net, route, dev = clashes[0]
        more = " (and %d more)" % (len(clashes) - 1) if len(clashes) > 1 else ""
        return Result("subnets", False, "network %s (%s) overlaps the %s route %s via %s%s" % (
            name, net, where, route, dev, more),
                      "remove it and create it on a free range: `hostbridge network rm %s` then "
                      "`hostbridge network create --subnet 10.213.0.0/24 %s`; for the default bridge, restart "
                      "the engine (it picks a free range)" % (name, name))
    return Result("subnets", True, "%d container subnet(s), none overlaps the %s's %d route(s)"
                  % (count, where, len(routes)))


def _free(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, path


def _gib(n) -> str:
    return "%.1f GiB" % (n / float(1 << 30)) if n >= (1 << 30) else "%.0f MiB" % (n / float(1 << 20))


def _short(free, total) -> bool:
    """Too little free space: under MIN_FREE_BYTES, or under MIN_FREE_RATIO of a disk (pure)."""
    return free < MIN_FREE_BYTES or bool(total and free < MIN_FREE_RATIO * total)


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
        if _short(free, total):
            worst = worst or (label, at, free)
    if worst:
        label, at, free = worst
        return Result("disk", False, "; ".join(seen), "free space on %s (%s: %s left): `hostbridge system prune -a`, or "
                      "move it elsewhere" % (at, label, _gib(free)))
    return Result("disk", True, "; ".join(seen))


GUEST_DATA = "/var/lib/hostbridge"  # the guest's data disk (images, containers, volumes)
MAX_DRIFT = 2.0  # seconds between the guest's clock and the host's before the check fails


def _vm_only(ctx, name):
    if ctx.mode != "vm":
        return Result(name, None, "%s machine: no VM guest" % ctx.mode)
    if ctx.record.fields.get("state") != "running":
        return Result(name, False, "machine %s is %s" % (ctx.name, ctx.record.fields.get("state") or "stopped"),
                      ctx.up_fix())
    return None


def check_clock(ctx) -> Result:
    """The guest's clock agrees with the host's (a laptop's sleep stops a VM's clock)."""
    from .machines import clock

    skipped = _vm_only(ctx, "clock")
    if skipped:
        return skipped
    try:
        drift, rtt = clock.guest_drift(ctx.guest_run)
    except HostbridgeError as e:
        return Result("clock", False, str(e), ctx.up_fix())
    figure = "the guest's clock is %+.2f s off the host's (SSH round trip %s)" % (drift, _ms(rtt))
    if abs(drift) > MAX_DRIFT + rtt:
        return Result("clock", False, figure, "`hostbridge restart --machine %s` sets the guest's clock (TLS "
                      "and registry tokens fail on a skewed clock)" % ctx.name)
    return Result("clock", True, figure)


def check_guest_disk(ctx) -> Result:
    """Free space on the guest's data disk (images, containers, volumes)."""
    skipped = _vm_only(ctx, "guest disk")
    if skipped:
        return skipped
    try:
        rc, out, err = ctx.guest_run("df -P -k %s" % GUEST_DATA)
        fields = out.strip().splitlines()[-1].split()
        total, free = int(fields[1]) << 10, int(fields[3]) << 10
    except HostbridgeError as e:
        return Result("guest disk", False, str(e), ctx.up_fix())
    except (IndexError, ValueError):
        return Result("guest disk", False, "df in the guest printed %r (%s)" % (out.strip()[:80], err.strip()),
                      ctx.up_fix())
    figure = "%s %s free of %s" % (GUEST_DATA, _gib(free), _gib(total))
    if _short(free, total):
        return Result("guest disk", False, figure, "`hostbridge system prune -a --machine %s`, or grow the disk: "
                      "`hostbridge down --machine %s`, then `hostbridge up --machine %s --disk %dG`"
                      % (ctx.name, ctx.name, ctx.name, 2 * max(1, total >> 30)))
    return Result("guest disk", True, figure)


def check_accelerator(ctx) -> Result:
    """The VM's accelerator: KVM/HVF/WHPX, or TCG (software emulation, several times slower)."""
    import json

    if ctx.mode != "vm":
        return Result("accelerator", None, "%s machine: no VM" % ctx.mode)
    if ctx.record.driver != "qemu":
        return Result("accelerator", None, "chosen by %s, not by hostbridge" % ctx.record.driver)
    try:
        with open(ctx.record.paths.driver_json) as f:
            accel = json.load(f).get("accel")
    except (OSError, ValueError):
        accel = None
    if not accel:
        return Result("accelerator", False, "the machine was never booted", ctx.up_fix())
    if accel == "tcg":
        return Result("accelerator", True, "tcg: software emulation, several times slower (no working "
                                           "KVM/HVF/WHPX here; `hostbridge logs --serial` shows why at boot)")
    return Result("accelerator", True, "%s (hardware virtualization)" % accel)


def check_shares(ctx) -> Result:
    """Each host folder shared with the VM is mounted in the guest, at its path, and writable."""
    from .hostos import guest_path

    skipped = _vm_only(ctx, "shares")
    if skipped:
        return skipped
    shares = [guest_path(p) for p in ctx.record.fields.get("shares") or []]
    if not shares:
        return Result("shares", None, "no host folder is shared with %s" % ctx.name)
    probe = ".hostbridge-doctor-%d" % os.getpid()
    for path in shares:
        # /proc/mounts escapes a space as \040 (and a backslash as \134).
        entry = " %s 9p " % path.replace("\\", "\\134").replace(" ", "\\040")
        f = shlex.quote(posixpath.join(path, probe))
        try:
            rc, out, err = ctx.guest_run("grep -qF -- %s /proc/mounts || { echo not-mounted; exit 1; }; "
                                         "touch %s && rm -f %s" % (shlex.quote(entry), f, f))
        except HostbridgeError as e:
            return Result("shares", False, str(e), ctx.up_fix())
        if rc != 0:
            what = "is not mounted" if "not-mounted" in out else "is not writable (%s)" % (err.strip() or rc)
            return Result("shares", False, "%s %s in the guest" % (path, what),
                          "`hostbridge restart --machine %s` mounts it again" % ctx.name)
    return Result("shares", True, "%s mounted and writable" % ", ".join(shares))


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
    if not fps and ctx.mode == "vm":
        return Result("host key", False, "no key pinned for %s in %s" % (entry, path),
                      "`hostbridge restart --machine %s` pins the guest's own key again" % ctx.name)
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


CHECKS = (check_engine, check_tunnel, check_clock, check_dns, check_subnets, check_disk, check_guest_disk,
          check_accelerator, check_shares, check_host_key, check_keyring, check_docker_cli)


def run(config, environ=None, checks=CHECKS, **options) -> list:
    """Run every check for the configured machine.

    Args:
        options: ``Context``'s DNS options (dns_name, dns_image, dns_server).
    Returns:
        [Result, …] in ``checks`` order.
    """
    ctx = Context(config, environ, **options)
    out = []
    try:
        for check in checks:
            try:
                out.append(check(ctx))
            except Exception as e:  # a check must not hide the others: its crash is its finding
                out.append(Result(check.__name__[len("check_"):].replace("_", " "), False,
                                  "the check itself failed: %s: %s" % (type(e).__name__, e), "report this as a bug"))
    finally:
        ctx.close()
    return out


__all__ = ["Result", "Context", "CHECKS", "run", "subnet_clashes", "host_routes", "parse_routes", "keyring_verdict"]
