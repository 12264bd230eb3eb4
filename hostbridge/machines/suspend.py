"""Suspend and resume of a QEMU machine: its running state saved to a file, restored by ``up``.

``down`` (without ``--shutdown``) readies the guest by its init's command channel (``prepare-suspend``,
``steps.prepare_suspend``), or over SSH for a VM without one (``prepare_command``: disk synced
and trimmed, caches dropped, the 9p shares unmounted, since QEMU refuses to migrate a guest
with a mounted 9p export), pauses the VM and migrates it through QMP to ``fd:`` (a descriptor of the state file, passed with ``getfd``)
(``save``; QEMU 7.2 has no ``file:`` URI nor mapped-ram). Paused first, the migration is one
pass at full speed; pages never touched go as zero markers, so 1 GiB of guest RAM saves to
what the guest really uses. QEMU then quits.

``up`` starts the same command line with ``-incoming fd:N`` (the state file, inherited; ``incoming_args``),
waits for the load (bounded: ``wait_incoming``), continues the VM, and remounts the shares
and corrects the clock (by the command channel: ``steps.resume_by_channel``; else over SSH:
``resume_command``; ``machine.py``). A saved state that does not fit
(``check``: another QEMU command line or binary, a disk changed since, a truncated file) is
thrown away with a note and the VM boots. A save QEMU did not finish (killed) leaves only a
``.tmp`` file: thrown away too; the disk was flushed and synced before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time

from hostbridge.errors import VMError
from hostbridge.machines.qmp import QMP

FORMAT = 1
MAX_BANDWIDTH = 1 << 40  # bytes/s: QEMU's default (128 MiB/s) throttles even a paused VM's save
LOW_SPACE = 64 << 20  # bytes: less than this free after a failed save reads as "disk full"
MOUNT_OPTS = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap"  # provision/guest-init.py SHARE_OPTS
DATA_MOUNT = "/var/lib/hostbridge"


class SaveError(VMError):
    """The state could not be saved; the VM keeps running."""


class SharesBusy(VMError):
    """A share is in use in the guest (a container's bind mount): QEMU cannot migrate it."""


def fingerprint(argv, binary_path):
    """What a saved state depends on: the QEMU command line (its SSH port and -daemonize aside:
    neither is part of the guest's state) and the QEMU binary (path, size, mtime).

    Returns:
        A hex string.
    """
    words = []
    for word in argv[1:]:
        if word.startswith("user,id=net0,hostfwd="):
            word = "user,id=net0,hostfwd=PORT"
        if word != "-daemonize":
            words.append(word)
    try:
        st = os.stat(binary_path)
        stamp = "%s:%d:%d" % (binary_path, st.st_size, int(st.st_mtime))
    except OSError:
        stamp = binary_path
    return hashlib.sha256(json.dumps([stamp, words]).encode()).hexdigest()


def disk_stamp(path):
    """The data disk's identity after the save: (size, mtime in ns). Any write changes it."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


SAVE_FD = "hostbridge-save"  # the name QEMU keeps the state file's descriptor under (getfd)


def incoming_args(fd):
    """The QEMU options that load the state from descriptor ``fd`` (``state_path`` opened by us and
    inherited by QEMU: no shell and no ``cat`` needed, which a PATH without them lacks)."""
    return ["-incoming", "fd:%d" % fd]


def prepare_command(shares):
    """The guest command run before a save: flush and trim the data disk, drop the page cache (less
    to save), unmount the shares ([{"tag", "path"}]). Exits 3, with the shares mounted again, when
    one is busy."""
    head = "sync; fstrim %s >/dev/null 2>&1; echo 3 > /proc/sys/vm/drop_caches" % DATA_MOUNT
    if not shares:
        return head
    unmount = " && ".join("{ ! %s || umount %s; }" % (_is_share(s["path"]), shlex.quote(s["path"]))
                          for s in reversed(shares))
    # A container's bind mount of a share is a mount of its own namespace, which `umount` here leaves.
    unmount += " && ! awk '$3 == \"9p\" {f = 1} END {exit !f}' /proc/[0-9]*/mounts 2>/dev/null"
    return "%s; { %s; } || { %s; exit 3; }" % (head, unmount, resume_command(shares))


def resume_command(shares):
    """The guest command after a resume: mount the shares ([{"tag", "path"}]) again, each where it was."""
    mounts = ["{ %s || mount -t 9p -o %s %s %s; }" % (_is_share(s["path"]), MOUNT_OPTS, shlex.quote(s["tag"]),
                                                     shlex.quote(s["path"])) for s in shares]
    return " && ".join(mounts) or "true"


def _is_share(path):
    """A guest shell test: a 9p file system is mounted at ``path`` (the guest has no mountpoint(1),
    and 9p's statfs reports the host's file system type). /proc/mounts escapes blanks as octal."""
    escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    return "awk -v p=%s '$3 == \"9p\" && $2 == p {f = 1} END {exit !f}' /proc/mounts" % shlex.quote(
        escaped.replace("\\", "\\\\"))


def prepare_guest(conn, shares):
    """Run ``prepare_command`` in the guest over ``conn`` (a ``tunnel.ssh.Connection``).

    Raises:
        SharesBusy: a share is in use (the guest keeps it mounted).
        VMError: the command failed otherwise.
    """
    rc, _, err = conn.run(prepare_command(shares), timeout=60)
    if rc == 3:
        raise SharesBusy("a shared folder is in use in the guest (a container's bind mount?): QEMU cannot save "
                         "a VM whose 9p share is in use")
    if rc != 0:
        raise VMError("readying the guest for suspend failed: %s" % (err.decode(errors="replace").strip() or rc))


def resume_guest(conn, shares):
    """Run ``resume_command`` in the guest over ``conn``.

    Raises:
        VMError: a share could not be mounted again.
    """
    rc, _, err = conn.run(resume_command(shares), timeout=60)
    if rc != 0:
        raise VMError("mounting the shares again after resume failed: %s"
                      % (err.decode(errors="replace").strip() or rc))


def save(address, state_path, timeout=120.0):
    """Pause the VM and write its state to ``state_path`` through QMP; QEMU stays, paused, to be quit.

    Written to ``state_path.tmp`` and renamed once QEMU reports the migration complete.

    Returns:
        QEMU's ``query-migrate`` answer (sizes, times).
    Raises:
        SaveError: the migration failed (the disk is full…) or took longer than ``timeout``;
        the VM was continued and keeps running, and nothing was written.
    """
    tmp = state_path + ".tmp"
    _remove(tmp)
    try:
        return _save(address, state_path, tmp, timeout)
    except OSError as e:  # QEMU went away (killed) during the save: what it wrote is no state
        _remove(tmp)
        raise SaveError("saving the VM's state failed: QEMU stopped answering (%s)" % e) from None


def _save(address, state_path, tmp, timeout):
    with QMP(address, timeout=10) as q:
        running = q.execute("query-status").get("running")
        q.execute("stop")
        try:
            q.execute("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:  # QEMU writes to a descriptor of ours: no shell and no `cat` (a PATH may lack them)
                q.execute_with_fd("getfd", fd, fdname=SAVE_FD)
            finally:
                os.close(fd)
            q.execute("migrate", uri="fd:%s" % SAVE_FD)
            deadline = time.monotonic() + timeout
            while True:
                info = q.execute("query-migrate")
                status = info.get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    if status not in ("failed", "cancelled"):
                        q.execute("migrate_cancel")
                    raise SaveError(_save_failure(state_path, info, timeout))
                time.sleep(0.02)
        except VMError as e:
            _remove(tmp)
            if running:
                q.execute("cont")
            if isinstance(e, SaveError):
                raise
            raise SaveError("saving the VM's state failed: %s; the VM keeps running" % e) from None
    os.replace(tmp, state_path)
    return info


def _save_failure(state_path, info, timeout):
    directory = os.path.dirname(os.path.abspath(state_path))
    try:
        st = os.statvfs(directory)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE:
        why = "the disk holding %s is full (%d MiB free)" % (directory, free >> 20)
    elif info.get("status") not in ("failed", "cancelled"):
        why = "it took longer than %d s" % timeout
    else:
        why = info.get("error-desc") or "QEMU's migration failed"
    return "saving the VM's state failed: %s; the VM keeps running" % why


def write_meta(meta_path, fp, state_path, disk):
    """Record what the saved state fits: the fingerprint, the state file's size, the disk's stamp."""
    meta = {"format": FORMAT, "fingerprint": fp, "size": os.path.getsize(state_path), "disk": disk_stamp(disk),
            "saved_at": time.time()}
    tmp = meta_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, meta_path)


def check(meta_path, state_path, fp, disk):
    """Whether the saved state may be loaded.

    Returns:
        (usable, reason): reason says why not ("" when usable or when there is no saved state).
    """
    if not os.path.exists(state_path) and not os.path.exists(meta_path):
        return False, ""
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False, "its description is missing or unreadable (the save did not finish)"
    if not os.path.exists(state_path):
        return False, "the state file is missing"
    if meta.get("format") != FORMAT:
        return False, "it was saved by another hostbridge version"
    if meta.get("fingerprint") != fp:
        return False, "the guest image, the VM's settings or QEMU changed since"
    if os.path.getsize(state_path) != meta.get("size"):
        return False, "the state file is truncated or was changed (%d bytes, %s expected)" % (
            os.path.getsize(state_path), meta.get("size"))
    try:
        if disk_stamp(disk) != meta.get("disk"):
            return False, "the data disk was changed since"
    except OSError:
        return False, "the data disk is missing"
    return True, ""


def wait_incoming(address, alive, timeout):
    """Wait until QEMU has loaded the saved state, then continue the VM.

    Args:
        address: the QMP address.
        alive: () -> bool, whether QEMU still runs (it exits when the state does not load).
        timeout: seconds; past them the load counts as failed (never a hung VM).
    Returns:
        (True, "") once the VM runs, else (False, why).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False, "QEMU could not load it"
        try:
            with QMP(address, timeout=2) as q:
                status = q.execute("query-status").get("status")
                if status == "running":
                    return True, ""
                if status in ("paused", "postmigrate") and q.execute("query-migrate").get("status") != "active":
                    q.execute("cont")  # saved paused: the state keeps the run state
                    return True, ""
        except (OSError, ValueError, VMError):
            pass
        time.sleep(0.02)
    return False, "it did not load in %d s" % timeout


def discard(*paths):
    """Remove a saved state's files."""
    for p in paths:
        _remove(p)
        _remove(p + ".tmp")


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
