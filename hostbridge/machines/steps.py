"""The steps a VM machine's ``up`` is made of, each doing one thing; ``machine.py`` sequences them.

Each step raises what its tools raise (VMError, TunnelError, RemoteHostError, OSError…);
``machine.py`` names the stage that failed and cleans up.
"""

from __future__ import annotations

import shutil
import time

from ..errors import MachineError


def cached_guest_image(url, sha256):
    """The guest image ``guest_image`` would give, when it is cached and intact; else None."""
    from . import image

    return image.cached(url, sha256)


def guest_image(url, sha256, progress=None):
    """The qemu guest image: downloaded from ``url`` (checked against ``sha256``), else assembled
    from Debian's packages (downloaded once; ``progress(stage, text)`` hears every fifth of it)."""
    from . import image

    if url:
        return image.fetch(url, sha256)
    shown = set()

    def download(done, total, name):
        step = int(5 * done / total) if total else 5
        if progress and step not in shown:
            shown.add(step)
            progress("image", "note: Debian packages for the guest: %d of %d MB downloaded" % (done >> 20, total >> 20))

    return image.build(progress=download)


def connect(record, info):
    """Pin the guest's host key and open an SSH connection with the machine's own key.

    Raises:
        VMError: the driver did not say which host key the guest has (never trusted on first use).
    """
    from ..tunnel.ssh import Connection

    target, known = pin_ssh(record, info)
    return Connection(target, known, timeout=30, look_for_keys=False, allow_agent=False).open()


def pin_ssh(record, info):
    """Pin the guest's host key for ``info``'s address and record the SSH target (the tunnel
    agent's), without connecting. Returns (SSHTarget, KnownHosts).

    Raises:
        VMError: the driver did not say which host key the guest has (never trusted on first use).
    """
    from ..errors import VMError
    from ..tunnel.known_hosts import KnownHosts
    from ..tunnel.ssh import SSHTarget

    if not info.host_key:
        raise VMError("the guest's SSH host key is not known: refusing to trust whatever key %s:%d presents"
                      % (info.host, info.port))
    known = KnownHosts(record.paths.known_hosts)
    known.pin_public_key(info.host, info.port, info.host_key)
    target = SSHTarget(hostname=info.host, port=info.port, user=info.user, identity_files=[info.key_path])
    record.fields["ssh"] = target.to_dict()
    return target, known


# Where the QEMU guest's Python keeps what it compiles (provision/guest-init.py PYCACHE).
GUEST_PYCACHE = "/var/cache/hostbridge/pycache"


def engine_pyc_dir():
    """Where this host keeps the engine as a guest's Python compiled it (deploy.harvest_pycs),
    shared by every machine: ``CACHE/engine-pyc/<engine sources' digest>``."""
    import os

    from .. import deploy, paths

    return os.path.join(paths.cache_dir(), "engine-pyc", deploy.engine_digest())


def deploy_engine(conn, record):
    """Copy the engine unless this version is there already. Returns (layout, older layout or None)."""
    from .. import deploy

    old = deploy.Layout.from_dict(record.fields["layout"]) if record.fields.get("layout") else None
    if old is not None and old.version == deploy.engine_version() and conn.run("test -f %s" % old.zipapp)[0] == 0:
        return old, None
    # This host's compiled engine is kept beside a guest's: compiled once per engine, not per `up`.
    pycs = deploy.compile_pycs(engine_pyc_dir())
    return deploy.deploy(conn, record.paths.engine_zipapp_dir, pyc_dirs=[pycs], compile_here=False), old


def keep_engine_bytecode(conn, layout, driver):
    """After the engine's first start in a guest: keep what the guest's Python compiled, when
    it is not this host's Python (else the zipapp carries it), so that the next machine's
    engine does not compile itself again (seconds under emulation). The QEMU guest's Python is
    known (assemble.GUEST_PYTHON): nothing is asked when it is this host's.
    Best effort: returns the number of modules kept, 0 when there was nothing to keep or it failed."""
    import logging
    import sys

    from .. import deploy
    from ..tunnel.errors import RemoteHostError

    if driver == "qemu":
        from .guestimage.assemble import GUEST_PYTHON

        if sys.implementation.cache_tag == "cpython-%d%d" % GUEST_PYTHON:
            return 0
    try:
        return deploy.harvest_pycs(conn, layout, GUEST_PYCACHE, engine_pyc_dir())
    except (RemoteHostError, OSError) as e:
        logging.getLogger(__name__).warning("could not keep the engine's compiled modules: %s", e)
        return 0


def engine_settings(conn, record, layout, settings):
    """Give the engine its proxies and extra CAs (``settings``: (proxies, CA files); None: leave
    them) when they differ from the last ``up``'s, stopping it so that ``start_engine`` starts it
    with them. Returns whether they changed."""
    from .. import deploy
    from ..engine_settings import fingerprint

    if settings is None or record.fields.get("engine_settings") == fingerprint(*settings):
        return False
    proxies, cas = settings
    if "engine_settings" not in record.fields and not any(proxies.values()) and not cas:
        record.fields["engine_settings"] = fingerprint(*settings)  # none, never any: nothing to write
        return False
    deploy.write_settings(conn, layout, *settings)
    deploy.stop_engine(conn, layout)  # the engine reads them when it starts
    record.fields["engine_settings"] = fingerprint(*settings)
    return True


def start_engine(conn, layout, old):
    """Start the engine of ``layout``, stopping an ``old`` one of another version first."""
    from .. import deploy

    if old is not None and old.version != layout.version:
        deploy.stop_engine(conn, old)
    deploy.start_engine(conn, layout, wait=120)


def share_map(conn, record, layout):
    """Tell the engine where the host's Windows folders are mounted (``ROOT/host-paths.json``,
    ``{"C:\\\\Users": "/c/Users"}``; nothing to write elsewhere), so the docker CLI's
    ``-v C:\\Users\\x\\p:/p`` is translated (guest/volumes/hostpaths.py). Read per create: no restart.

    Raises:
        RemoteHostError: the file cannot be written.
    """
    import json
    import posixpath
    import shlex

    from .. import deploy, hostos
    from ..tunnel.errors import RemoteHostError

    path_map = hostos.host_path_map(record.fields.get("shares") or ())
    if record.fields.get("host_path_map", {}) == path_map:
        return  # written by an earlier `up` (the file is on the data disk), or none needed: no SSH exec
    path = shlex.quote(posixpath.join(layout.root, "host-paths.json"))
    cmd = "mkdir -p %s && cat > %s.tmp && mv -f %s.tmp %s" % (shlex.quote(layout.root), path, path, path)
    rc, _, err = conn.run(deploy._priv(layout, cmd), stdin=json.dumps(path_map).encode(), timeout=30)
    if rc != 0:
        raise RemoteHostError("cannot write the share map %s in the guest: %s"
                              % (path, err.decode(errors="replace").strip()))
    record.fields["host_path_map"] = path_map  # saved with the record after the engine stage


def sync_clock(conn, drv=None):
    """Set the guest's clock to the host's: exactly by the guest's command channel (its init
    then learns its RTC's phase: ``ClockWatch``), else over SSH when they differ by more than a second."""
    from ..errors import VMError
    from . import clock

    try:
        if drv is not None and _by_channel(drv, "clock %.6f" % time.time(), 10, "setting the guest clock failed"):
            return None
    except VMError as e:  # SSH is there: the clock is set all the same
        import logging

        logging.getLogger(__name__).warning("%s; setting it over SSH", e)
    return clock.resync_ssh(conn)


def prepare_suspend(record, drv):
    """Ready the guest of a running machine for a save (``suspend.prepare_guest``): disk synced and
    trimmed, caches dropped, shares unmounted (those ``drv.guest_shares()`` names; none for a
    driver without it).

    Raises:
        SharesBusy: a share is in use. VMError: the guest cannot be reached or the command failed.
    """
    from ..errors import HostbridgeError, VMError
    from . import suspend, vmmode

    try:
        if _by_channel(drv, "prepare-suspend", 60, "the guest said"):
            return
        with vmmode.connection(record) as conn:
            suspend.prepare_guest(conn, _guest_shares(drv))
    except suspend.SharesBusy:
        raise
    except (HostbridgeError, OSError) as e:
        raise VMError("machine %s: readying the guest for suspend failed: %s" % (record.name, e),
                      hint="use `hostbridge down --shutdown`") from None


def resume_guest(conn, drv):
    """After a resume: the guest clock set at once (it stood still while saved), the shares mounted again."""
    from . import clock, suspend

    clock.resync_ssh(conn)
    suspend.resume_guest(conn, _guest_shares(drv))


def resume_by_channel(drv):
    """``resume_guest`` over the guest's command channel (no SSH): the clock set to the host's
    at once, the shares mounted again. Returns False when the VM has no channel (nothing done).

    Raises:
        VMError: the guest did not answer, or failed.
    """
    return (_by_channel(drv, "clock %.6f" % time.time(), 10, "setting the guest clock failed")
            and _by_channel(drv, "mount-shares", 60, "mounting the shares again after resume failed"))


def _by_channel(drv, line, timeout, what):
    """Run ``line`` by the guest's init (QemuDriver.guest_command). Returns False when the VM
    has no command channel.

    Raises:
        SharesBusy: a share is in use (prepare-suspend). VMError: the guest failed (``what``).
    """
    from ..errors import VMError
    from . import suspend

    failure = drv.guest_command(line, timeout=timeout) if hasattr(drv, "guest_command") else None
    if failure is None:
        return False
    if failure.startswith("busy: "):
        raise suspend.SharesBusy("a shared folder is in use in the guest (a container's bind mount?): QEMU cannot "
                                 "save a VM whose 9p share is in use (%s)" % failure[len("busy: "):])
    if failure:
        raise VMError("%s: %s" % (what, failure))
    return True


class Background:
    """``fn(*args)`` run in a thread from now on (the tunnel agent's SSH handshake beside the
    resume steps); ``result()`` waits for it and returns its value or raises its error."""

    def __init__(self, fn, *args):
        import threading

        self.value, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(fn, args), name=fn.__name__, daemon=True)
        self.thread.start()

    def _run(self, fn, args):
        try:
            self.value = fn(*args)
        except BaseException as e:  # handed to result()'s caller
            self.error = e

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _guest_shares(drv):
    return drv.guest_shares() if hasattr(drv, "guest_shares") else []


def start_tunnel(record, layout):
    """Write tunnel.json for the guest and start a fresh tunnel agent. Returns its endpoint URL."""
    from ..tunnel import control

    p = record.paths
    control.write_config(p, {"ssh": record.fields["ssh"], "remote_socket": layout.socket,
                             "endpoint": control.default_endpoint(), "forward_ports": True, "keepalive": 15,
                             "connect_timeout": 30, "clock_sync": True})
    control.stop_agent(p)  # an agent from an earlier boot may hold an old SSH port
    return control.ensure_agent(p, timeout=90)


def wait_ping(url, timeout=60.0):
    """Wait until the engine answers ``/_ping`` at ``url``.

    Raises:
        MachineError: no answer within ``timeout`` seconds.
    """
    from ..tunnel import localhttp

    deadline = time.monotonic() + timeout
    while not localhttp.ping(url, timeout=10):
        if time.monotonic() > deadline:
            raise MachineError("the engine does not answer /_ping at %s after %d s" % (url, timeout))
        time.sleep(0.2)


def remove_machine_files(p):
    """Remove a machine's directory and its runtime directory (sockets)."""
    shutil.rmtree(p.dir, ignore_errors=True)
    shutil.rmtree(p.runtime, ignore_errors=True)
