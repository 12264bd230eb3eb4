"""docker ps and docker images: flags, filters (CLI map form and SDK list form), formats."""

import json
import time

import pytest

from .conftest import dock, ok

pytestmark = pytest.mark.root


@pytest.fixture
def three(env):
    """compat-ps1 running (label tier=web), compat-ps2 exited 2, compat-ps3 created."""
    ok(env, "run", "-d", "--name", "compat-ps1", "--network", "none", "-l", "tier=web", "busybox", "sleep", "1000")
    dock(env, "run", "--name", "compat-ps2", "--network", "none", "-l", "tier=db", "busybox", "sh", "-c", "exit 2")
    ok(env, "create", "--name", "compat-ps3", "busybox", "echo", "a b")
    return {n: ok(env, "inspect", "-f", "{{.Id}}", n).strip() for n in ("compat-ps1", "compat-ps2", "compat-ps3")}


def names(env, *args):
    return [n for n in ok(env, "ps", *args, "--format", "{{.Names}}").split() if n.startswith("compat-ps")]


def test_ps_default_all_quiet_size(env, three):
    out = ok(env, "ps")
    assert out.splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                           "NAMES"]
    assert "compat-ps1" in out and "compat-ps2" not in out
    row = [x for x in out.splitlines() if x.endswith("compat-ps1")][0]
    assert three["compat-ps1"][:12] in row and '"sleep 1000"' in row and "Up " in row
    assert names(env, "-a") == ["compat-ps3", "compat-ps2", "compat-ps1"]  # newest first
    allrows = ok(env, "ps", "-a")
    assert "Exited (2) " in allrows and "Created" in allrows and "\"echo 'a b'\"" in allrows
    q = ok(env, "ps", "-a", "-q").split()
    assert all(len(x) == 12 for x in q) and three["compat-ps2"][:12] in q
    assert three["compat-ps1"] in ok(env, "ps", "-q", "--no-trunc").split()
    s = ok(env, "ps", "-s", "--filter", "name=compat-ps1")
    assert s.splitlines()[0].split()[-1] == "SIZE" and "(virtual 1.99MB)" in s


@pytest.mark.parametrize("flt,expect", [
    ("status=exited", ["compat-ps2"]), ("status=created", ["compat-ps3"]), ("status=running", ["compat-ps1"]),
    ("name=compat-ps2", ["compat-ps2"]), ("label=tier", ["compat-ps2", "compat-ps1"]),
    ("label=tier=web", ["compat-ps1"]), ("ancestor=busybox", ["compat-ps3", "compat-ps2", "compat-ps1"]),
    ("ancestor=busybox:latest", ["compat-ps3", "compat-ps2", "compat-ps1"]), ("exited=2", ["compat-ps2"]),
    ("before=compat-ps3", ["compat-ps2", "compat-ps1"]), ("since=compat-ps1", ["compat-ps3", "compat-ps2"]),
])
def test_ps_filters(env, three, flt, expect):
    assert names(env, "-a", "--filter", flt) == expect


def test_ps_filter_id_and_combined(env, three):
    assert names(env, "-a", "--filter", "id=" + three["compat-ps2"][:10]) == ["compat-ps2"]
    assert names(env, "-a", "--filter", "label=tier", "--filter", "status=exited") == ["compat-ps2"]
    # two values of one filter are alternatives
    assert names(env, "-a", "--filter", "status=exited", "--filter", "status=created") == ["compat-ps3", "compat-ps2"]
    r = dock(env, "ps", "--filter", "status=bogus")
    assert r.returncode != 0 and "status=bogus" in r.stderr
    r = dock(env, "ps", "--filter", "nosuch=1")
    assert r.returncode != 0 and "Invalid filter 'nosuch'" in r.stderr


def test_ps_formats(env, three):
    line = [x for x in ok(env, "ps", "-a", "--format", "{{json .}}").splitlines() if "compat-ps2" in x][0]
    j = json.loads(line)
    assert j["Names"] == "compat-ps2" and j["State"] == "exited" and j["Image"] == "busybox"
    assert j["Labels"] == "tier=db" and j["ID"] == three["compat-ps2"][:12]
    assert j["Command"] == '"sh -c \'exit 2\'"'
    assert j["CreatedAt"].endswith("+0000 UTC")
    table = ok(env, "ps", "-a", "--filter", "name=compat-ps1", "--format", "table {{.Names}}\t{{.Label \"tier\"}}")
    rows = [x.split() for x in table.splitlines()]
    # the header is the CLI's own ("LABEL" or the label's name, by CLI version); the row is ours
    assert len(rows) == 2 and rows[0][0] == "NAMES" and rows[1] == ["compat-ps1", "web"], rows
    assert ok(env, "ps", "-a", "--filter", "name=compat-ps1", "--format", "{{.Status}}").startswith("Up ")
    assert ok(env, "ps", "-a", "--filter", "name=compat-ps2", "--format", "{{.State}}") == "exited\n"
    assert ok(env, "ps", "-n", "1", "--format", "{{.Names}}") == "compat-ps3\n"
    assert ok(env, "ps", "-l", "--format", "{{.Names}}") == "compat-ps3\n"


def test_sdk_list_filters(sdk, three):
    def ns(**kw):
        return sorted(c.name for c in sdk.containers.list(**kw) if c.name.startswith("compat-ps"))
    assert ns() == ["compat-ps1"]
    assert ns(all=True) == ["compat-ps1", "compat-ps2", "compat-ps3"]
    # the SDK sends filters as lists: {"status": ["exited"]}
    assert ns(all=True, filters={"status": "exited"}) == ["compat-ps2"]
    assert ns(all=True, filters={"label": ["tier=web"]}) == ["compat-ps1"]
    assert ns(all=True, filters={"exited": 2}) == ["compat-ps2"]
    assert ns(all=True, filters={"ancestor": "busybox"}) == ["compat-ps1", "compat-ps2", "compat-ps3"]
    c = sdk.containers.get("compat-ps1")
    assert c.status == "running" and c.labels == {"tier": "web"} and c.image.tags == ["busybox:latest"]


# ---- images ----------------------------------------------------------------------------------

@pytest.fixture
def tagged(env):
    # other tiers share this engine and may hold dangling images of their own: ours is the new one
    earlier = set(ok(env, "images", "-q", "--no-trunc", "--filter", "dangling=true").split())
    ok(env, "tag", "busybox", "compat/img:one")
    ok(env, "run", "--name", "compat-imgsrc", "--network", "none", "busybox", "sh", "-c", "echo x > /x")
    ok(env, "commit", "-c", "LABEL role=extra", "compat-imgsrc", "compat/img:two")
    time.sleep(1.1)  # "before"/"since" compare creation times with one-second resolution in the CLI's view
    ok(env, "commit", "compat-imgsrc")  # dangling
    dangling = [i for i in ok(env, "images", "-q", "--no-trunc", "--filter", "dangling=true").split()
                if i not in earlier]
    yield dangling
    dock(env, "rmi", "compat/img:one", "compat/img:two", *dangling)


def test_images_flags_filters_formats(env, tagged):
    out = ok(env, "images")
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(x.split()[:2] == ["compat/img", "one"] for x in out.splitlines())
    assert len(tagged) == 1 and tagged[0].startswith("sha256:")
    # a dangling image shows as <none> <none> (only intermediate ones are hidden without -a)
    assert any(x.split()[:3] == ["<none>", "<none>", tagged[0][7:19]] for x in out.splitlines()), out
    assert set(ok(env, "images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}").split()) == {
        "<none>:<none>"}
    assert tagged[0][7:19] in ok(env, "images", "--filter", "dangling=true", "--format", "{{.ID}}").split()
    assert ok(env, "images", "--filter", "label=role=extra", "--format", "{{.Repository}}:{{.Tag}}") == "compat/img:two\n"
    assert ok(env, "images", "--filter", "reference=compat/*", "--format", "{{.Tag}}").split() == ["two", "one"]
    assert ok(env, "images", "compat/img", "--format", "{{.Tag}}").split() == ["two", "one"]
    before = ok(env, "images", "--filter", "before=compat/img:two", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "busybox:latest" in before and "compat/img:two" not in before
    since = ok(env, "images", "-a", "--filter", "since=compat/img:two", "--format", "{{.ID}}").split()
    before_ids = ok(env, "images", "-a", "--filter", "before=compat/img:two", "--format", "{{.ID}}").split()
    assert tagged[0][7:19] in since and not set(since) & set(before_ids)
    q = ok(env, "images", "-q")
    assert all(len(x) == 12 for x in q.split())
    nt = ok(env, "images", "--no-trunc", "--format", "{{.ID}}").split()
    assert all(x.startswith("sha256:") and len(x) == 71 for x in nt)
    j = json.loads(ok(env, "images", "compat/img:one", "--format", "{{json .}}"))
    assert j["Repository"] == "compat/img" and j["Tag"] == "one" and j["Size"] == "1.99MB"
    assert set(ok(env, "images", "-a", "-q").split()) >= set(q.split())


def test_sdk_images(sdk, tagged):
    tags = {t for im in sdk.images.list() for t in im.tags}
    assert {"compat/img:one", "compat/img:two", "busybox:latest"} <= tags
    assert [im.id for im in sdk.images.list(filters={"dangling": True})] == tagged
    assert [im.tags for im in sdk.images.list(filters={"label": "role=extra"})] == [["compat/img:two"]]
    # the SDK re-reads each image, so all its tags show, busybox's too
    assert {im.id for im in sdk.images.list(name="compat/img")} == {sdk.images.get("compat/img:one").id,
                                                                   sdk.images.get("compat/img:two").id}
    im = sdk.images.get("compat/img:one")
    assert im.tag("compat/img", "three") is True
    assert "compat/img:three" in sdk.images.get("compat/img:one").tags
    sdk.images.remove("compat/img:three")
    assert "compat/img:three" not in sdk.images.get("compat/img:one").tags
