"""Helpers for the engine ↔ registry tests: the stock docker CLI against the engine fixture,
images pushed straight to a registry, and a snapshot of the engine's image files."""

from __future__ import annotations

import os
import subprocess

from hostbridge.guest.registry import client as rc
from hostbridge.guest.registry import push
from tests.registry import regsupport

CFG = rc.RegistryConfig(retries=1, backoff=0.05, timeout=10)


def docker(env, *args, input=None, check=True, timeout=120):
    """Run the stock docker CLI; CompletedProcess (text). ``check``: fail with its stderr."""
    r = subprocess.run(["docker"] + list(args), env=env, capture_output=True, text=True, input=input,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("docker %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def push_image(tmp_path, name, layers, busybox_tar=None, cmd=("sh",)):
    """Push an image made of ``layers`` (each a {name: bytes} dict or a tar path) over an
    optional busybox base, straight to the registry. Returns (push result, image id)."""
    tars = [busybox_tar] if busybox_tar else []
    for i, lay in enumerate(layers):
        if isinstance(lay, str):
            tars.append(lay)
        else:
            tars.append(regsupport.small_layer_tar(str(tmp_path / ("layer%d-%s.tar" % (i, os.urandom(3).hex()))), lay))
    cfg = regsupport.image_config([regsupport.file_digest(t) for t in tars], cmd=cmd)
    res = push.push(name, cfg, tars, config=CFG)
    return res, "sha256:" + __import__("hashlib").sha256(cfg).hexdigest()


def image_files(engine) -> dict:
    """What the engine keeps under ROOT/images, for 'nothing left behind' checks."""
    base = os.path.join(engine.root, "images")
    out = {}
    for sub in ("layers", "imagedb", "tmp", "downloads"):
        d = os.path.join(base, sub)
        found = []
        for dirpath, dirnames, filenames in os.walk(d):
            rel = os.path.relpath(dirpath, d)
            if sub == "layers" and rel != ".":
                dirnames[:] = []  # a layer dir's presence is enough
            found.extend(os.path.join(rel, n) for n in dirnames + filenames if sub != "layers" or rel == ".")
        out[sub] = sorted(found)
    return out


def image_ids(env):
    """Image ids ``docker images -aq --no-trunc`` lists."""
    return set(docker(env, "images", "-aq", "--no-trunc").stdout.split())
