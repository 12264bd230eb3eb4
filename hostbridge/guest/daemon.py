"""``python3 -m hostbridge.guest daemon``: run the engine on a unix socket until SIGTERM."""

from __future__ import annotations

import argparse
import grp
import logging
import os
import signal
import sys
import threading

DEFAULT_ROOT = "/var/lib/hostbridge"
DEFAULT_SOCKET = "/run/hostbridge/docker.sock"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="hostbridge-engine daemon")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--socket", default=DEFAULT_SOCKET)
    p.add_argument("--group", default="hostbridge")
    p.add_argument("--pidfile")
    p.add_argument("--log-file")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def _group_id(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def main(argv):
    args = parse_args(argv)
    root = os.path.abspath(args.root)
    os.makedirs(root, mode=0o711, exist_ok=True)
    log_file = args.log_file or os.path.join(root, "engine.log")
    logging.basicConfig(filename=None if log_file == "-" else log_file,
                        level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("hostbridge.daemon")
    pidfile = args.pidfile or os.path.join(root, "engine.pid")

    from .api.routes import build_router
    from .api.server import APIServer
    from .engine import Engine
    from .errors import GuestError
    try:
        engine = Engine(root)
        server = APIServer(args.socket, engine, build_router(), group=_group_id(args.group))
    except (GuestError, OSError) as e:
        log.error("engine failed to start: %s", e)
        sys.stderr.write("hostbridge engine: %s\n" % e)
        return 1
    from .util import atomic_write
    atomic_write(pidfile, b"%d\n" % os.getpid())
    done = threading.Event()

    def on_term(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    server.serve_in_thread()
    log.info("engine %s listening on %s (root %s)", os.getpid(), args.socket, root)
    while not done.wait(3600):
        pass
    log.info("stopping")
    engine.shutdown()
    server.stop()
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass
    return 0
