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

    known, target = pin_host_key(record, info)
    return Connection(target, known, timeout=30, look_for_keys=False, allow_agent=False).open()


def pin_host_key(record, info):
    """Pin the guest's host key (the driver knows it in advance) and record the SSH target the
    tunnel agent logs in to. Returns (KnownHosts, SSHTarget).

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
    return known, target


# Where the QEMU guest's Python keeps what it compiles (provision/guest-init.py PYCACHE).
GUEST_PYCACHE = "/var/cache/hostbridge/pycache"
# Where the QEMU guest's Python keeps what it compiled of the image's own modules, in RAM
# (assemble.IMAGE_PYCACHE, below this directory), and the init compiled ahead (assemble.INIT_PYC):
# the image's bytecode seed (image.keep_bytecode_seed). The data disk's (usr/local: the
# engine) are kept per engine (engine_pyc_dir).
SEED_TREE = "/usr/lib/hostbridge"


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


def guest_layout():
    """The layout ``deploy.deploy`` gives the QEMU guest (provisioned by its image, root, the
    image's python3, no docker CLI: the shim at its default place), known without asking it."""
    from .. import deploy
    from .guestimage.assemble import GUEST_PYTHON

    facts = deploy.RemoteFacts(uid=0, home="/root", python="%d.%d.0" % GUEST_PYTHON, provisioned=True)
    layout = deploy.plan_layout(facts, "the guest")
    layout.shim = deploy.shim_path(layout)
    return layout


def engine_blob():
    """The engine zipapp the QEMU guest's init installs at boot from a read-only drive, with the
    compiled modules ``deploy_engine`` ships, zero-padded to whole sectors: built once per engine
    (``CACHE/engine-offer/DIGEST/``, a stable path, so a suspended VM's command line still fits)
    and rebuilt when more compiled modules were kept since (``keep_engine_bytecode``). Hashed
    once; after that a stamp (size, mtime, inode) says the file is the one hashed.

    Returns:
        (the drive's path, the zipapp's sha256, its size, its CRC-32).
    """
    import hashlib
    import json
    import os
    import shutil
    import tempfile
    import zlib

    from .. import deploy, paths
    from .guestimage.assemble import GUEST_PYTHON
    from .image import file_stamp

    tag = "cpython-%d%d" % GUEST_PYTHON  # only the guest's Python's compiled modules
    pycs = deploy.compile_pycs(engine_pyc_dir())
    kept = sum(len([n for n in files if n.endswith(".%s.pyc" % tag)]) for _top, _dirs, files in os.walk(pycs))
    d = os.path.join(paths.cache_dir(), "engine-offer", deploy.engine_digest())
    path, meta_path = os.path.join(d, "engine-%s.img" % deploy.engine_version()), os.path.join(d, "offer.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["stamp"] == file_stamp(path) and meta["pycs"] == kept and meta.get("tag") == tag:
            return path, meta["sha256"], meta["size"], meta["crc32"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    os.makedirs(d, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=d)  # two `up`s at once each build their own, then rename
    try:
        with open(deploy.build_zipapp(tmp, [pycs], compile_here=False, tags={tag}), "rb") as f:
            data = f.read()
        with open(os.path.join(tmp, "drive"), "wb") as f:
            f.write(data + b"\0" * (-len(data) % 512))
        os.replace(os.path.join(tmp, "drive"), path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"stamp": file_stamp(path), "pycs": kept, "tag": tag, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "crc32": zlib.crc32(data)}
    with open(meta_path + ".tmp%d" % os.getpid(), "w") as f:
        json.dump(meta, f)
    os.replace(meta_path + ".tmp%d" % os.getpid(), meta_path)
    return path, meta["sha256"], meta["size"], meta["crc32"]


def engine_offer(record, settings):
    """Write what the QEMU guest's init installs at boot, before the engine starts (fw_cfg
    engine.json: ``record.paths.engine_offer``, mode 0600: a proxy URL may hold a password): the
    engine (``engine_blob``: its version, sha256 (which says which engine it is), size and
    CRC-32 (what the guest checks the drive's bytes with: a tenth of a second less than a sha256
    under emulation; the offer and the drive come from this host alike); the zipapp itself is
    on a read-only drive: qemu_cmd.engine_drive_args), the relay and the docker shim, the engine's settings (``settings``: (proxies,
    CA files), as ``engine_settings`` writes them; None: left as they are), the share map
    (``share_map``'s). A boot then needs no SSH exec. Returns the offer (a dict; ``drive`` is the drive's path on this host)."""
    import base64
    import json
    import os

    from .. import deploy, hostos
    from ..engine_settings import daemon_json
    from ..guest import relay

    layout = guest_layout()
    drive, sha, size, crc = engine_blob()
    with open(relay.__file__, encoding="utf-8") as f:
        relay_source = f.read()
    offered = None
    if settings is not None:
        proxies, cas = settings
        if "engine_settings" in record.fields or any(proxies.values()) or cas:  # else none, never any
            blobs = []
            for path in cas:
                with open(path, "rb") as f:
                    blobs.append([os.path.basename(deploy.remote_ca_path(layout, len(blobs), path)),
                                  base64.b64encode(f.read()).decode()])
            offered = {"daemon": daemon_json(proxies, [deploy.remote_ca_path(layout, i, p) for i, p in enumerate(cas)]),
                       "cas": blobs}
    offer = {"version": layout.version, "name": os.path.basename(layout.zipapp), "sha256": sha, "size": size,
             "crc32": crc, "drive": drive, "relay": relay_source, "shim": deploy.shim_script(layout),
             "settings": offered, "host_paths": hostos.host_path_map(record.fields.get("shares") or ())}
    path = record.paths.engine_offer
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(offer, f)
    os.replace(path + ".tmp", path)
    return offer


def took_offer(record, offer, settings):
    """Record what the guest's init installed from ``offer`` (``engine_offer``): the engine's
    layout, its settings' fingerprint, the share map. Returns the layout."""
    from ..engine_settings import fingerprint

    layout = guest_layout()
    record.fields["layout"] = layout.to_dict()
    if settings is not None:
        record.fields["engine_settings"] = fingerprint(*settings)
    record.fields["host_path_map"] = offer["host_paths"]
    record.save()
    return layout


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


def wants_guest_bytecode(driver):
    """Whether this host lacks the engine as the QEMU guest's Python compiles it (it is not this
    host's Python, and no guest gave it yet): the zipapp from fw_cfg then ships none, and the
    first new machine hands over what its Python compiled (``keep_guest_bytecode``)."""
    import os
    import sys

    if driver != "qemu":
        return False
    from .guestimage.assemble import GUEST_PYTHON

    tag = "cpython-%d%d" % GUEST_PYTHON
    if sys.implementation.cache_tag == tag:
        return False
    for _top, _dirs, files in os.walk(engine_pyc_dir()):
        if any(n.endswith(".%s.pyc" % tag) for n in files):
            return False
    return True


def wants_pycache_seed(record):
    """Whether the QEMU image of ``record`` has no bytecode seed yet (image.has_seed): the
    guest's Python compiled the image's modules itself, and this machine hands them over
    (``keep_guest_bytecode``)."""
    from . import image

    return bool(record.driver == "qemu" and record.fields.get("image_dir")
                and not image.has_seed(record.fields["image_dir"]))


# Compiles the guest init as /init runs it (initramfs-init.sh) when the image has no compiled
# init (its assembler's Python was not the guest's): unchecked-hash, as assemble.precompile's.
_COMPILE_INIT = ("[ -e {pyc} ] || python3 -IS -c 'import py_compile, sys; py_compile.compile(sys.argv[1], "
                 "sys.argv[2], doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)' "
                 "{init} {pyc}")


def keep_pycache_seed(conn, image_dir, tree=SEED_TREE, init=None, init_pyc=None):
    """Keep what the guest's Python compiled of the image's own modules (below ``tree``: the
    RAM pycache prefix, and the init compiled now when the image has it not) as the bytecode
    seed of the image in ``image_dir`` (image.keep_bytecode_seed), which every next machine's
    kernel unpacks with its initrd. Best effort: returns the number of modules kept, 0 when
    there were none or it failed. ``init``/``init_pyc``: the guest init and its compiled copy
    (assemble.INIT, INIT_PYC; tests point them elsewhere)."""
    import logging
    import posixpath
    import shlex

    from .. import deploy
    from ..errors import HostbridgeError
    from . import image
    from .guestimage import assemble

    init, init_pyc = init or assemble.INIT, init_pyc or assemble.INIT_PYC
    try:
        conn.run(_COMPILE_INIT.format(pyc=shlex.quote(init_pyc), init=shlex.quote(init)), timeout=120)
        files = deploy.remote_pycs(conn, guest_layout(), tree)
        if not files:
            return 0
        return image.keep_bytecode_seed(image_dir, [(posixpath.join(tree, name), data) for name, data in files])
    except (HostbridgeError, OSError) as e:
        logging.getLogger(__name__).warning("could not keep the guest's compiled modules for its image: %s", e)
        return 0


def keep_guest_bytecode(record, info, url):
    """After a new machine's first boot, once its engine is ready (``/info`` waits until its
    start, imports included, is done), keep what the guest's Python compiled, over an SSH
    connection of its own: the engine's modules (``keep_engine_bytecode``, when
    ``wants_guest_bytecode``) and the image's (``keep_pycache_seed``, when ``wants_pycache_seed``).
    After the engine answers, not on the way to it. Best effort: returns the number of modules kept."""
    from ..errors import HostbridgeError
    from ..tunnel import localhttp

    engine, seed = wants_guest_bytecode(record.driver), wants_pycache_seed(record)
    if not (engine or seed):
        return 0
    try:
        localhttp.get_json(url, "/info", 60)
        conn = connect(record, info)
    except (HostbridgeError, OSError):
        return 0
    try:
        kept = keep_engine_bytecode(conn, guest_layout(), record.driver) if engine else 0
        return kept + (keep_pycache_seed(conn, record.fields["image_dir"]) if seed else 0)
    finally:
        conn.close()


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
    then learns its RTC's phase: ``ClockWatch``), else over SSH (``conn``; None: not at all, the
    guest keeps its RTC's time, within a second) when they differ by more than a second."""
    from ..errors import VMError
    from . import clock

    try:
        if drv is not None and _clock_by_channel(drv):
            return None
    except VMError as e:  # SSH is there: the clock is set all the same
        import logging

        logging.getLogger(__name__).warning("%s%s", e, "; setting it over SSH" if conn is not None else "")
    if conn is None:  # a boot with no SSH session (the engine came with it): the RTC's clock stays
        return None
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
    return (_clock_by_channel(drv)
            and _by_channel(drv, "mount-shares", 60, "mounting the shares again after resume failed"))


# The guest sets its clock to the host's time the command carries, when the command arrives: a
# round trip longer than this (a guest busy just after a resume) set it late, and it is sent again.
CLOCK_ROUND_TRIP = 0.25
CLOCK_TRIES = 3


def _clock_by_channel(drv):
    """The guest clock set to the host's over the command channel, within CLOCK_ROUND_TRIP s (or
    within the last of CLOCK_TRIES round trips). Returns False when the VM has no channel.

    Raises:
        VMError: the guest did not answer, or failed.
    """
    for _ in range(CLOCK_TRIES):
        sent = time.monotonic()
        if not _by_channel(drv, "clock %.6f" % time.time(), 10, "setting the guest clock failed"):
            return False
        if time.monotonic() - sent <= CLOCK_ROUND_TRIP:
            break
    return True


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


def _guest_shares(drv):
    return drv.guest_shares() if hasattr(drv, "guest_shares") else []


class Background:
    """``fn(*args)`` run in a thread (the tunnel agent's SSH login overlapping the engine's
    start, or a resume's steps); ``result()`` waits for it and returns its value or raises its error."""

    def __init__(self, fn, *args):
        import threading

        self.value, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args, daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        try:
            self.value = fn(*args)
        except BaseException as e:  # handed to the caller of result()
            self.error = e

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value

    def settle(self):
        """Wait for it, whatever it gives (what it started is someone else's to undo)."""
        self.thread.join()


def start_tunnel(record, layout, retry=0, hold=False):
    """Write tunnel.json for the guest and start a fresh tunnel agent, which tries again for
    ``retry`` s while nothing listens at the guest's SSH port and, with ``hold``, logs in only
    once ``control.release``d (within ``retry`` s; the caller ``control.hold``s first). Returns its
    endpoint URL."""
    from ..tunnel import control

    p = record.paths
    control.write_config(p, {"ssh": record.fields["ssh"], "remote_socket": layout.socket,
                             "endpoint": control.default_endpoint(), "forward_ports": True, "keepalive": 15,
                             "connect_timeout": 30, "connect_retry": retry, "hold": hold, "clock_sync": True})
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
