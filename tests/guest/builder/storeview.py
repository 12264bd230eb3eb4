"""The engine's real build backend (``StoreBackend`` over an overlay ``ImageStore``), with the
few read-only helpers the build-driver tests call on their backend.

Nothing here stands in for the store: builds, RUN containers, layers and the cache are the
engine's own. The helpers only look: ``image`` is the store's config JSON, ``image_dir`` holds
a read-only overlay mount of the image's layers at ``rootfs`` (what a container sees, whiteouts
applied by the kernel), unmounted by ``close``.
"""

from __future__ import annotations

import os
import subprocess

from hostbridge.guest.builder.storebackend import StoreBackend
from hostbridge.guest.images.store import ImageStore


class StoreTestBackend(StoreBackend):
    """Args:
        root: a fresh directory for the store's state root.
        busybox_tar: a rootfs tar imported as busybox:latest.
    """

    def __init__(self, root: str, busybox_tar: str):
        store = ImageStore(os.path.join(root, "state"))
        # the root tier has overlayfs; StoreBackend refuses vfs, so a broken probe fails here
        assert store.driver == "overlay", "the image store's overlay probe failed under %s" % root
        with open(busybox_tar, "rb") as f:
            store.import_rootfs(f, "busybox:latest")
        super().__init__(store, os.path.join(root, "state", "builder"), run_timeout=120)
        self.views = os.path.join(root, "views")
        os.makedirs(os.path.join(self.views, "empty", "a"))
        os.makedirs(os.path.join(self.views, "empty", "b"))
        self.runs = []  # argv of every RUN, for tests to see what really ran
        self._mounted = []

    def run(self, rootfs, config, argv, output, cancelled=None, options=None):
        self.runs.append(list(argv))
        return super().run(rootfs, config, argv, output, cancelled, options)

    def image(self, image_id: str) -> dict:
        return self.store.config(image_id)

    def image_dir(self, image_id: str) -> str:
        """A dir whose ``rootfs`` shows the image's layers merged (mounted once per image)."""
        d = os.path.join(self.views, image_id.split(":")[-1][:16])
        merged = os.path.join(d, "rootfs")
        if not os.path.isdir(merged):
            os.makedirs(merged)
            # read-only overlay: no upper dir, and the kernel wants two lower dirs at least
            lower = self.store.lower_dirs(image_id) + [os.path.join(self.views, "empty", "a"),
                                                       os.path.join(self.views, "empty", "b")]
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=" + ":".join(lower), merged],
                           check=True, capture_output=True)
            self._mounted.append(merged)
        return d

    def leftovers(self) -> list:
        """Step rootfs dirs not released, and any still mounted (a leak if a build left one)."""
        with open("/proc/self/mounts") as f:
            mounted = [line.split()[1] for line in f if line.split()[1].startswith(self.rootfs_dir + "/")]
        return os.listdir(self.rootfs_dir) + mounted

    def close(self) -> None:
        for m in reversed(self._mounted):
            subprocess.run(["umount", m], capture_output=True)
        self._mounted = []
