"""A real BuildBackend over plain directories, for testing the build driver without the engine.

Not a mock: images are real config JSON files with full root filesystem snapshots on disk
(as docker's vfs driver keeps them), COPY/ADD/WORKDIR really write into a copied rootfs, and
RUN really runs the command, chrooted into the step's rootfs in new mount/uts/ipc
namespaces (root only; the process tree is killed if the build is interrupted). What it does
not do is isolation beyond that (no cgroups, no network namespace), which the engine's backend
provides. Ids are sha256 of the image JSON, whose ``rootfs.diff_ids`` hash each layer's tree.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import tarfile

from hostbridge.guest.builder.backend import BuildBackend, Rootfs
from hostbridge.guest.builder.steps import BuildCancelled
from hostbridge.guest.errors import NotFound, RuntimeFailure
from hostbridge.guest.images import reference
from hostbridge.guest.util import new_id

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000


def copy_tree(src: str, dst: str) -> None:
    """Copy a rootfs keeping owners, modes, times and links (``cp -a``; shutil drops owners)."""
    subprocess.run(["cp", "-a", src, dst], check=True)


def tree_hash(root: str) -> str:
    """sha256 over every entry's path, type, mode, owner, link target and content."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            h.update(("%s %o %d %d\n" % (rel, st.st_mode, st.st_uid, st.st_gid)).encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(full).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return "sha256:" + h.hexdigest()


class DirBackend(BuildBackend):
    """Images under ``root/images/<hex>/{image.json,rootfs/}``, tags and cache in JSON."""

    def __init__(self, root: str):
        self.root = root
        for d in ("images", "work"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        self.runs = []  # argv of every RUN, for tests to see what really ran

    # -- helpers for tests ---------------------------------------------------------------

    def _json(self, name, default):
        try:
            with open(os.path.join(self.root, name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return default

    def _save(self, name, obj):
        with open(os.path.join(self.root, name), "w") as f:
            json.dump(obj, f)

    def import_rootfs_tar(self, tar_path: str, ref: str) -> str:
        """Make a one-layer image from a rootfs tar (as ``docker import``) and tag it."""
        work = os.path.join(self.root, "work", new_id())
        os.makedirs(work)
        with tarfile.open(tar_path) as t:
            t.extractall(work, numeric_owner=True)
        image = {"architecture": "amd64", "os": "linux", "config": {},
                 "history": [{"created": "2026-01-01T00:00:00Z", "comment": "Imported from -"}]}
        image_id = self._store(image, work, [tree_hash(work)])
        self.tag(image_id, ref)
        return image_id

    def image_dir(self, image_id: str) -> str:
        return os.path.join(self.root, "images", image_id.split(":")[-1])

    def image(self, image_id: str) -> dict:
        with open(os.path.join(self.image_dir(image_id), "image.json")) as f:
            return json.load(f)

    def _store(self, image: dict, rootfs_dir: str, diff_ids: list) -> str:
        image = dict(image)
        image["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        blob = json.dumps(image, sort_keys=True).encode()
        image_id = "sha256:" + hashlib.sha256(blob).hexdigest()
        d = self.image_dir(image_id)
        if not os.path.exists(d):
            os.makedirs(d)
            os.rename(rootfs_dir, os.path.join(d, "rootfs"))
            with open(os.path.join(d, "image.json"), "wb") as f:
                f.write(blob)
        else:
            shutil.rmtree(rootfs_dir)
        return image_id

    # -- BuildBackend --------------------------------------------------------------------

    def resolve_image(self, name, pull=False):
        tags = self._json("tags.json", {})
        image_id = None
        if name.startswith("sha256:") and os.path.exists(self.image_dir(name)):
            image_id = name
        else:
            try:
                image_id = tags.get(reference.parse_normalized(name).familiar())
            except Exception:
                image_id = None
        if image_id is None:
            raise NotFound("pull access denied for %s, repository does not exist or may require "
                           "'docker login'" % name)
        return image_id, self.image(image_id)

    def create_rootfs(self, image_id):
        rid = new_id()
        path = os.path.join(self.root, "work", rid)
        if image_id:
            copy_tree(os.path.join(self.image_dir(image_id), "rootfs"), path)
        else:
            os.makedirs(path)
        return Rootfs(rid, path)

    def run(self, rootfs, config, argv, output, cancelled=None, options=None):
        if os.geteuid() != 0:
            raise RuntimeFailure("RUN needs root (chroot and namespaces)")
        self.runs.append(list(argv))
        env = list(config.get("Env") or [])
        cwd = config.get("WorkingDir") or "/"
        user = config.get("User") or ""

        def child():
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(_CLONE_NEWNS | _CLONE_NEWUTS | _CLONE_NEWIPC) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            os.chroot(rootfs.path)
            os.makedirs(cwd, exist_ok=True)
            os.chdir(cwd)
            if user:
                uid, _, gid = user.partition(":")
                os.setgid(int(gid or uid))
                os.setgroups([])
                os.setuid(int(uid))

        env_map = dict(e.split("=", 1) for e in env)
        try:
            proc = subprocess.Popen(argv, env=env_map, preexec_fn=child, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise RuntimeFailure("exec: %s: %s" % (argv[0], e.strerror)) from None
        try:
            while True:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                if cancelled is not None and cancelled():
                    raise BuildCancelled()
                if not ready:
                    continue
                chunk = proc.stdout.read1(65536)
                if not chunk:
                    break
                output(chunk, 1)
            return proc.wait(timeout=120)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            proc.stdout.close()

    def commit(self, parent_id, rootfs, image):
        parent_diffs = list(self.image(parent_id)["rootfs"]["diff_ids"]) if parent_id else []
        snapshot = os.path.join(self.root, "work", new_id())
        if rootfs is None:
            if parent_id:
                copy_tree(os.path.join(self.image_dir(parent_id), "rootfs"), snapshot)
            else:
                os.makedirs(snapshot)
            return self._store(image, snapshot, parent_diffs)
        copy_tree(rootfs.path, snapshot)
        parent_tree = tree_hash(os.path.join(self.image_dir(parent_id), "rootfs")) if parent_id else None
        new_tree = tree_hash(snapshot)
        if parent_tree == new_tree or (parent_id is None and not os.listdir(snapshot)):
            image["history"][-1]["empty_layer"] = True
            return self._store(image, snapshot, parent_diffs)
        return self._store(image, snapshot, parent_diffs + [new_tree])

    def release(self, rootfs):
        shutil.rmtree(rootfs.path, ignore_errors=True)

    def tag(self, image_id, ref):
        tags = self._json("tags.json", {})
        tags[reference.parse_normalized(ref).familiar()] = image_id
        self._save("tags.json", tags)

    def find_cache(self, parent_id, key):
        found = self._json("cache.json", {}).get("%s %s" % (parent_id, key))
        return found if found and os.path.exists(self.image_dir(found)) else None

    def store_cache(self, parent_id, key, image_id):
        cache = self._json("cache.json", {})
        cache["%s %s" % (parent_id, key)] = image_id
        self._save("cache.json", cache)

    def leftovers(self) -> list:
        """Rootfs dirs not released (a leak if a build left any)."""
        return os.listdir(os.path.join(self.root, "work"))
