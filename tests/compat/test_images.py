"""save, load, import (file and -, -c, -m), history, tag, rmi — CLI and SDK."""

import json
import subprocess

import pytest

from .conftest import dock, ok

pytestmark = pytest.mark.root


def test_tag_history_rmi(env):
    ok(env, "tag", "busybox", "compat/tagged:v1")
    ok(env, "tag", "compat/tagged:v1", "localhost:5000/compat/tagged")
    ids = ok(env, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert "compat/tagged:v1 " in ids and "localhost:5000/compat/tagged:latest " in ids
    hist = ok(env, "history", "compat/tagged:v1")
    assert hist.split("\n")[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "Imported from -" in hist
    assert ok(env, "history", "-q", "compat/tagged:v1").strip() == ok(env, "images", "-q", "busybox").strip()
    out = ok(env, "rmi", "compat/tagged:v1", "localhost:5000/compat/tagged")
    assert out.splitlines() == ["Untagged: compat/tagged:v1", "Untagged: localhost:5000/compat/tagged:latest"]
    r = dock(env, "rmi", "compat/tagged:v1")
    assert r.returncode == 1 and "No such image: compat/tagged:v1" in r.stderr
    r = dock(env, "tag", "busybox", "Bad:Name")
    assert r.returncode != 0


def test_rmi_of_an_image_in_use(env):
    ok(env, "tag", "busybox", "compat/inuse:1")
    ok(env, "create", "--name", "compat-user", "compat/inuse:1", "true")
    iid = ok(env, "inspect", "-f", "{{.Id}}", "compat/inuse:1").strip()
    # another tag exists (busybox), so untagging is fine; deleting by id is not
    r = dock(env, "rmi", iid)
    assert r.returncode == 1 and "conflict" in r.stderr.lower()
    assert ok(env, "rmi", "compat/inuse:1") == "Untagged: compat/inuse:1\n"


def test_save_load_file_and_pipe(env, tmp_path):
    ok(env, "tag", "busybox", "compat/saved:1")
    iid = ok(env, "inspect", "-f", "{{.Id}}", "compat/saved:1").strip()
    out = tmp_path / "saved.tar"
    ok(env, "save", "-o", str(out), "compat/saved:1")
    ok(env, "rmi", "compat/saved:1")
    assert ok(env, "load", "-i", str(out)) == "Loaded image: compat/saved:1\n"
    ok(env, "rmi", "compat/saved:1")
    with open(out, "rb") as f:
        r = subprocess.run(["docker", "load"], env=env, stdin=f, capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == b"Loaded image: compat/saved:1\n"
    assert ok(env, "load", "-q", "-i", str(out)) in ("Loaded image: compat/saved:1\n", "")
    save = subprocess.run(["docker", "save", "compat/saved:1"], env=env, capture_output=True, timeout=60)
    assert save.returncode == 0 and save.stdout[257:262] == b"ustar"
    assert ok(env, "inspect", "-f", "{{.Id}}", "compat/saved:1").strip() == iid
    r = dock(env, "save", "compat/nosuch:1")
    assert r.returncode == 1 and "No such image" in r.stderr
    ok(env, "rmi", "compat/saved:1")


def test_import_file_and_stdin_with_changes(env, tmp_path):
    ok(env, "run", "--name", "compat-src", "--network", "none", "busybox", "sh", "-c", "echo imported > /marker")
    tar = tmp_path / "rootfs.tar"
    ok(env, "export", "-o", str(tar), "compat-src")
    iid = ok(env, "import", "-c", "ENV IMP=1", "-c", 'CMD ["cat", "/marker"]', "-m", "from a file", str(tar),
             "compat/imported:file").strip()
    assert iid.startswith("sha256:")
    assert ok(env, "run", "--rm", "--network", "none", "compat/imported:file") == "imported\n"
    assert ok(env, "run", "--rm", "--network", "none", "compat/imported:file", "sh", "-c", "echo $IMP") == "1\n"
    hist = ok(env, "history", "--format", "{{.Comment}}", "compat/imported:file")
    assert hist.splitlines() == ["from a file"]
    with open(tar, "rb") as f:
        r = subprocess.run(["docker", "import", "-m", "piped", "-", "compat/imported:pipe"], env=env, stdin=f,
                           capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(b"sha256:")
    assert ok(env, "run", "--rm", "--network", "none", "compat/imported:pipe", "cat", "/marker") == "imported\n"
    assert json.loads(ok(env, "image", "inspect", "compat/imported:pipe"))[0]["Comment"] == "piped"
    ok(env, "rmi", "compat/imported:file", "compat/imported:pipe")


def test_sdk_images_save_load(sdk, tmp_path):
    im = sdk.images.get("busybox")
    assert im.tag("compat/sdksave", "1")
    data = b"".join(sdk.images.get("compat/sdksave:1").save(named="compat/sdksave:1"))
    sdk.images.remove("compat/sdksave:1")
    loaded = sdk.images.load(data)
    assert [i.id for i in loaded] == [im.id]
    assert "compat/sdksave:1" in sdk.images.get(im.id).tags
    hist = sdk.images.get("compat/sdksave:1").history()
    assert hist[0]["Comment"] == "Imported from -" and isinstance(hist[0]["Size"], int)
    sdk.images.remove("compat/sdksave:1")
