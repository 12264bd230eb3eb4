"""``python3 -m hostbridge.guest daemon``: run the engine on a unix socket until SIGTERM."""

from __future__ import annotations

import argparse
import grp
import os
import signal
import sys
import threading
import time

DEFAULT_ROOT = "/var/lib/hostbridge"
DEFAULT_SOCKET = "/run/hostbridge/docker.sock"


def parse_args(argv):
    # a fixed help width: HelpFormatter would import shutil for the terminal's, at every start
    p = argparse.ArgumentParser(prog="hostbridge-engine daemon",
                                formatter_class=lambda prog: argparse.HelpFormatter(prog, width=100))
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--socket", default=DEFAULT_SOCKET)
    p.add_argument("--group", default="hostbridge")
    p.add_argument("--pidfile")
    p.add_argument("--log-file")
    p.add_argument("--log-level", default="info")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="reach this registry over plain HTTP (repeatable; loopback always is)")
    p.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                   help="try this mirror before Docker Hub for docker.io pulls (repeatable)")
    p.add_argument("--config-file", help="daemon.json-style file: insecure-registries, registry-mirrors, init-path, userns-remap, "
                                         "proxies {http-proxy, https-proxy, no-proxy}, registry-ca")
    # dockerd's proxy flags; unset, the config file's "proxies", then HTTP(S)_PROXY/NO_PROXY count.
    p.add_argument("--http-proxy", metavar="URL", help="proxy for plain-HTTP registries")
    p.add_argument("--https-proxy", metavar="URL", help="proxy for HTTPS registries (CONNECT)")
    p.add_argument("--no-proxy", metavar="LIST", help="hosts, domains, IPs or CIDRs reached without a proxy")
    p.add_argument("--registry-ca", action="append", default=[], metavar="FILE|DIR",
                   help="extra CA certificates (PEM; a folder's *.crt/*.pem) trusted for every registry")
    p.add_argument("--init-path", default="", metavar="PATH",
                   help="--init's binary (static tini; default: the first static docker-init, tini-static "
                        "or tini in PATH and the usual dirs, else a built-in python init)")
    p.add_argument("--userns-remap", default=None, metavar="default|USER[:GROUP]|UID[:GID]",
                   help="run containers in a user namespace: their root is a subordinate id of this user "
                        "(/etc/subuid, /etc/subgid); default = the user hostbridge-remap, made when missing")
    p.add_argument("--bip", help="the default bridge's GATEWAY/PREFIX (default: the first free /16 of "
                                 "172.17-31.0.0/16, then 192.168.N.0/20, chosen against the host's routes)")
    p.add_argument("--bridge", help="the default bridge's device name (default hb0; a non-default --root "
                                    "gets hb-<tag> so that engines side by side never share one)")
    return p.parse_args(argv)


def config_file(args):
    """The daemon.json-style config file as a dict ({} when none is given).

    Raises:
        GuestError: the config file is unreadable or not a JSON object.
    """
    from .errors import InvalidParameter
    from .util import read_json
    conf = {}
    if args.config_file:
        try:
            conf = read_json(args.config_file, {})
        except ValueError as e:
            raise InvalidParameter("config file %s is not valid JSON (%s): fix it" % (args.config_file, e))
        if not isinstance(conf, dict):
            raise InvalidParameter("config file %s must hold a JSON object" % args.config_file)
    return conf


def registry_config(args):
    """The RegistryConfig from the flags and the config file (flags first, both kept).

    Raises:
        GuestError: the config file is unreadable or not a JSON object.
    """
    from .registry.config import RegistryConfig
    conf = config_file(args)
    insecure = list(args.insecure_registry) + list(conf.get("insecure-registries") or [])
    mirrors = list(args.registry_mirror) + list(conf.get("registry-mirrors") or [])
    return RegistryConfig(insecure_registries=insecure, mirrors=mirrors, proxies=proxies(args, conf),
                          extra_ca=registry_cas(args, conf))


def proxies(args, conf, env=None):
    """The registry proxies: each of flag, config file ``proxies``, environment, first set wins.

    Raises:
        InvalidParameter: ``proxies`` is not an object of strings.
    """
    from .errors import InvalidParameter
    from .registry.config import Proxies
    section = conf.get("proxies") or {}
    if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
        raise InvalidParameter("config file %s: proxies must be an object of strings (http-proxy, https-proxy, "
                               "no-proxy)" % args.config_file)
    envp = Proxies.from_env(os.environ if env is None else env)

    def pick(flag, key, from_env):  # a flag given (even empty) wins, then the file, then the environment
        return flag if flag is not None else section[key] if key in section else from_env
    return Proxies(pick(args.http_proxy, "http-proxy", envp.http), pick(args.https_proxy, "https-proxy", envp.https),
                   pick(args.no_proxy, "no-proxy", envp.no_proxy))


def registry_cas(args, conf):
    """The extra CA paths (flags, then the config file's ``registry-ca``), each checked to exist.

    Raises:
        InvalidParameter: a path is missing or ``registry-ca`` is not a list of strings.
    """
    from .errors import InvalidParameter
    extra = conf.get("registry-ca") or []
    if isinstance(extra, str):
        extra = [extra]
    if not isinstance(extra, list) or not all(isinstance(v, str) for v in extra):
        raise InvalidParameter("config file %s: registry-ca must be a path or a list of paths" % args.config_file)
    paths = list(args.registry_ca) + extra
    if paths:
        import ssl
        from .registry.config import ca_files
        for p in paths:
            if not os.path.exists(p):
                raise InvalidParameter("registry CA %s does not exist: fix the path or remove it" % p)
        for f in ca_files(paths):
            try:
                ssl.create_default_context().load_verify_locations(cafile=f)
            except (ssl.SSLError, OSError) as e:
                raise InvalidParameter("registry CA %s is not a PEM certificate (%s): fix or remove it" % (f, e))
    return paths


def remap(args):
    """The userns.Remap of ``--userns-remap`` (else the config file's ``userns-remap``), or None.

    Raises:
        InvalidParameter: a bad value, or no such user or range (one line).
    """
    from .errors import InvalidParameter
    value = args.userns_remap
    if value is None:
        value = config_file(args).get("userns-remap")
        if value is not None and not isinstance(value, str):
            raise InvalidParameter("config file %s: userns-remap must be a string" % args.config_file)
    if not value:
        return None
    from . import userns  # only then: it imports tarfile and more, before the socket listens
    return userns.load(value)


def _group_id(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _logging(args, log_file):
    import logging
    logging.basicConfig(filename=None if log_file == "-" else log_file,
                        level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("hostbridge.daemon")


def main(argv):
    args = parse_args(argv)
    root = os.path.abspath(args.root)
    os.makedirs(root, mode=0o711, exist_ok=True)
    log_file = args.log_file or os.path.join(root, "engine.log")
    pidfile = args.pidfile or os.path.join(root, "engine.pid")

    from .api.routes import early_router
    from .api.server import APIServer
    from .errors import GuestError, InvalidParameter
    try:  # bad flags and an unusable socket stop the start before anyone is told it listens
        init_path = args.init_path or config_file(args).get("init-path") or ""
        if not isinstance(init_path, str):
            raise InvalidParameter("config file %s: init-path must be a string" % args.config_file)
        if args.bip:
            from .network import ipam
            ipam.parse_subnet(args.bip, "--bip")
        settings = dict(bip=args.bip, bridge=args.bridge, registry_config=registry_config(args),
                        init_path=init_path, remap=remap(args))
        server = APIServer(args.socket, None, None, group=_group_id(args.group), early=early_router())
    except (GuestError, OSError) as e:
        _logging(args, log_file).error("engine failed to start: %s", e)
        sys.stderr.write("hostbridge engine: %s\n" % e)
        return 1
    done = threading.Event()

    def on_term(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    _write_pidfile(pidfile)  # before the first /_ping is answered: starters read it then
    # Listen first: /_ping and /version are answered while the rest starts (seconds in an
    # emulated guest); every other request waits until the engine is ready. Even logging is
    # set up after: its imports are a fair part of a start there.
    server.serve_in_thread()
    log = _logging(args, log_file)
    from .runtime import oom
    try:  # dockerd's: under memory pressure its containers go before the engine
        oom.set_score_adj(oom.ENGINE_SCORE_ADJ)
    except OSError as e:
        log.warning("cannot set the engine's oom_score_adj: %s", e)
    log.info("engine %s listening on %s (root %s)", os.getpid(), args.socket, root)
    engine = _start_engine(root, settings, server, log)
    if engine is None:
        server.stop()
        _unlink(pidfile)
        return 1
    while not done.wait(3600):
        pass
    log.info("stopping")
    engine.shutdown()
    server.stop()
    _unlink(pidfile)
    return 0


def _start_engine(root, settings, server, log):
    """The Engine (its state restored) with the full router handed to ``server``, or None when
    it could not start: the error is logged, written to stderr, and told to waiting requests."""
    from .errors import GuestError
    t = time.monotonic()
    try:
        from .api.routes import build_router
        from .engine import Engine
        router = build_router()
        engine = Engine(root, **settings)
    except (GuestError, OSError) as e:
        log.error("engine failed to start: %s", e)
        sys.stderr.write("hostbridge engine: %s\n" % e)
        server.failed("the hostbridge engine failed to start: %s" % e)
        return None
    server.ready(engine, router)
    log.info("engine ready in %.2f s", time.monotonic() - t)
    return engine


def _write_pidfile(path):
    """Write our pid to ``path`` atomically (util.atomic_write would import tempfile, before the
    socket answers)."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"%d\n" % os.getpid())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
