"""The stock docker CLI and the docker SDK pull, push, search and log in through the engine,
against a real docker-registry on 127.0.0.1."""

import json
import os

import pytest

from hostbridge.guest.registry import manifest as mf
from hostbridge.guest.registry import push
from hostbridge.guest.registry.client import RegistryClient
from tests.registry import regsupport
from tests.registry.engine_support import CFG, docker, image_files, image_ids, push_image

pytestmark = pytest.mark.root


def test_push_rmi_pull_gives_the_same_image(engine, docker_env, registry):
    env = docker_env
    cid = docker(env, "run", "-d", "busybox", "sh", "-c", "echo committed > /hello; mkdir -p /srv; "
                 "head -c 200000 /dev/urandom > /srv/blob; sleep 300").stdout.strip()
    try:
        docker(env, "exec", cid, "true")
        name = "%s/team/committed:1" % registry.domain
        docker(env, "commit", cid, name)
    finally:
        docker(env, "rm", "-f", cid)
    iid = docker(env, "inspect", "-f", "{{.Id}}", name).stdout.strip()
    out = docker(env, "push", name).stdout
    assert "The push refers to repository [%s/team/committed]" % registry.domain in out
    assert "Pushed" in out
    digest = [ln for ln in out.splitlines() if ln.startswith("1: digest: ")][0].split()[2]
    assert docker(env, "inspect", "-f", "{{json .RepoDigests}}", name).stdout.strip() == json.dumps(
        ["%s/team/committed@%s" % (registry.domain, digest)])

    again = docker(env, "push", name).stdout  # every layer is there already
    assert "Layer already exists" in again and "Pushed" not in again

    docker(env, "rmi", name)
    assert iid not in image_ids(env)
    pulled = docker(env, "pull", name)
    assert "Digest: %s" % digest in pulled.stdout
    assert "Status: Downloaded newer image for %s" % name in pulled.stdout
    assert pulled.stdout.strip().splitlines()[-1] == name
    assert docker(env, "inspect", "-f", "{{.Id}}", name).stdout.strip() == iid
    assert docker(env, "run", "--rm", name, "cat", "/hello").stdout == "committed\n"

    by_digest = "%s/team/committed@%s" % (registry.domain, digest)
    docker(env, "rmi", name)
    docker(env, "pull", by_digest)
    assert docker(env, "inspect", "-f", "{{.Id}}", by_digest).stdout.strip() == iid
    listed = docker(env, "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    assert "%s/team/committed <none> %s" % (registry.domain, digest) in listed
    docker(env, "rmi", by_digest)
    assert not os.listdir(os.path.join(engine.root, "images", "downloads"))


def test_run_pulls_a_missing_image(tmp_path, engine, docker_env, busybox_rootfs_tar, registry):
    name = "%s/autopull:7" % registry.domain
    push_image(tmp_path, name, [{"etc/greeting": b"pulled on demand\n"}], busybox_rootfs_tar)
    r = docker(docker_env, "run", "--rm", name, "cat", "/etc/greeting")
    assert r.stdout == "pulled on demand\n"
    assert "Unable to find image '%s' locally" % name in r.stderr
    assert "Pull complete" in r.stderr and "Already exists" in r.stderr  # busybox's layer is shared
    docker(docker_env, "rmi", name)


def test_platform_selects_from_a_multiarch_index(tmp_path, docker_env, busybox_rootfs_tar, registry):
    d = registry.domain
    diff = [regsupport.file_digest(busybox_rootfs_tar)]
    cfgs = {"amd64": regsupport.image_config(diff, "amd64"), "arm64": regsupport.image_config(diff, "arm64", "v8")}
    pushed = {k: push.push("%s/multi:%s" % (d, k), c, [busybox_rootfs_tar], config=CFG) for k, c in cfgs.items()}
    index = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
        {"mediaType": mf.DOCKER_MANIFEST, "digest": pushed[a]["Digest"], "size": pushed[a]["Size"],
         "platform": dict({"os": "linux", "architecture": a}, **({"variant": "v8"} if a == "arm64" else {}))}
        for a in ("amd64", "arm64")]}).encode()
    idx = push.put_manifest(RegistryClient(d, config=CFG), "multi", "latest", index, mf.OCI_INDEX,
                            ["repository:multi:pull,push"])
    name = "%s/multi:latest" % d
    docker(docker_env, "pull", "--platform", "linux/arm64", name)
    assert docker(docker_env, "inspect", "-f", "{{.Architecture}}/{{.Variant}}", name).stdout.strip() == "arm64/v8"
    digests = docker(docker_env, "inspect", "-f", "{{json .RepoDigests}}", name).stdout
    assert "%s/multi@%s" % (d, idx) in digests  # the index digest, as docker records it
    docker(docker_env, "pull", "--platform", "linux/amd64", name)
    assert docker(docker_env, "inspect", "-f", "{{.Architecture}}", name).stdout.strip() == "amd64"
    r = docker(docker_env, "pull", "--platform", "linux/s390x", name, check=False)
    assert r.returncode != 0 and "no matching manifest for linux/s390x" in r.stderr
    docker(docker_env, "rmi", name)
    docker(docker_env, "image", "prune", "-f")


def test_whiteouts_and_opaque_dirs_in_a_container(tmp_path, docker_env, busybox_rootfs_tar, registry):
    name = "%s/whiteouts:1" % registry.domain
    lower = {"data/a": b"a\n", "data/b": b"b\n", "keep/old": b"old\n", "keep/sub/deep": b"deep\n"}
    upper = {"data/.wh.a": b"", "keep/.wh..wh..opq": b"", "keep/new": b"new\n"}
    push_image(tmp_path, name, [lower, upper], busybox_rootfs_tar)
    out = docker(docker_env, "run", "--rm", name, "sh", "-c", "ls /data; echo --; ls -R /keep").stdout
    assert out.split("--")[0].split() == ["b"]
    assert out.split("--")[1].split() == ["/keep:", "new"]
    docker(docker_env, "rmi", name)


def test_login_push_pull_with_htpasswd(tmp_path, engine, busybox_rootfs_tar, basic_registry):
    env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=str(tmp_path / "docker-config"),
               DOCKER_CLI_HINTS="false")
    d = basic_registry.domain
    name = "%s/private:1" % d
    docker(env, "tag", "busybox", name)
    r = docker(env, "push", name, check=False)
    assert r.returncode != 0 and "authentication required" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    bad = docker(env, "login", "-u", "alice", "--password-stdin", d, input="wrong\n", check=False)
    assert bad.returncode != 0 and "incorrect username or password" in bad.stderr
    ok = docker(env, "login", "-u", "alice", "--password-stdin", d, input="wonderland\n")
    assert "Login Succeeded" in ok.stdout
    out = docker(env, "push", name).stdout
    assert "Pushed" in out
    iid = docker(env, "inspect", "-f", "{{.Id}}", name).stdout.strip()
    docker(env, "rmi", name)
    docker(env, "pull", name)
    assert docker(env, "inspect", "-f", "{{.Id}}", name).stdout.strip() == iid
    # the engine keeps no credentials: not in its state files, not in its log
    for dirpath, _, files in os.walk(engine.base):
        if "docker-config" in dirpath:
            continue
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) < (8 << 20):
                with open(p, "rb") as fh:
                    assert b"wonderland" not in fh.read(), p
    docker(env, "logout", d)
    docker(env, "rmi", name)
    anon = docker(env, "pull", name, check=False)
    assert anon.returncode != 0 and len(anon.stderr.strip().splitlines()) == 1


def test_build_from_a_private_image_uses_the_logins_credentials(tmp_path, engine, basic_registry):
    """docker build sends X-Registry-Config: a FROM on a registry that wants a login pulls with it."""
    env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=str(tmp_path / "docker-config"),
               DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")
    d = basic_registry.domain
    base = "%s/buildbase:1" % d
    docker(env, "tag", "busybox", base)
    docker(env, "login", "-u", "alice", "--password-stdin", d, input="wonderland\n")
    docker(env, "push", base)
    docker(env, "rmi", base)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM %s\nRUN echo built > /built\n" % base)
    r = docker(env, "build", "-t", "frompriv:1", str(ctx), check=False)
    assert r.returncode == 0, r.stderr
    assert docker(env, "run", "--rm", "frompriv:1", "cat", "/built").stdout == "built\n"
    docker(env, "rmi", "frompriv:1", base)
    docker(env, "logout", d)
    r = docker(env, "build", "-t", "frompriv:2", str(ctx), check=False)
    assert r.returncode != 0 and "authentication required" in (r.stderr + r.stdout)


def test_missing_repository_and_tag_are_one_line_404s(docker_env, engine, busybox_rootfs_tar, tmp_path, registry):
    push_image(tmp_path, "%s/present:1" % registry.domain, [{"x": b"1"}], busybox_rootfs_tar)
    r = docker(docker_env, "pull", "%s/absent:1" % registry.domain, check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == ("Error response from daemon: pull access denied for %s/absent, repository does "
                                "not exist or may require 'docker login'" % registry.domain)
    status, body = engine.request("POST", "/images/create?fromImage=%s/absent&tag=1" % registry.domain)
    assert status == 404 and "pull access denied" in body["message"]
    r = docker(docker_env, "pull", "%s/present:nope" % registry.domain, check=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "manifest for %s/present:nope not found" % registry.domain in r.stderr
    r = docker(docker_env, "run", "--rm", "%s/absent:1" % registry.domain, check=False)
    assert r.returncode != 0 and "pull access denied" in r.stderr


def test_docker_search_reads_the_catalog(tmp_path, docker_env, registry):
    for repo in ("team/app", "team/web", "other/db"):
        push_image(tmp_path, "%s/%s:1" % (registry.domain, repo), [{"x": os.urandom(8)}])
    out = docker(docker_env, "search", "%s/team" % registry.domain).stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert [ln.split()[0] for ln in out[1:]] == ["%s/team/app" % registry.domain, "%s/team/web" % registry.domain]
    lim = docker(docker_env, "search", "--limit", "1", "%s/team" % registry.domain).stdout.splitlines()
    assert len(lim) == 2


def test_docker_sdk_pull_and_push(tmp_path, engine, busybox_rootfs_tar, registry):
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=engine.url, version="1.44")
    try:
        name = "%s/sdk/app" % registry.domain
        _, iid = push_image(tmp_path, name + ":2", [{"sdk": b"yes\n"}], busybox_rootfs_tar)
        img = client.images.pull(name, tag="2")
        assert img.id == iid and name + ":2" in img.tags
        img.tag(name, "3")
        lines = list(client.images.push(name, tag="3", stream=True, decode=True))
        assert any(ln.get("status") == "Pushed" or ln.get("status") == "Layer already exists" for ln in lines)
        assert "aux" in lines[-1] and lines[-1]["aux"]["Tag"] == "3"
        client.images.remove(name + ":2")
        client.images.remove(name + ":3")
        with pytest.raises(docker_sdk.errors.NotFound):
            client.images.pull("%s/sdk/missing" % registry.domain, tag="1")
    finally:
        client.close()


def test_corrupt_blob_fails_and_leaves_nothing(tmp_path, engine, docker_env, busybox_rootfs_tar, registry, proxy):
    res, iid = push_image(tmp_path, "%s/corrupt:1" % registry.domain, [{"x": os.urandom(50000)}], busybox_rootfs_tar)
    m = mf.fetch(RegistryClient(registry.domain, config=CFG), "corrupt", "1", ["repository:corrupt:pull"])
    proxy.corrupt.add(m.layers[1].digest)
    before = image_files(engine)
    r = docker(docker_env, "pull", "%s/corrupt:1" % proxy.domain, check=False)
    assert r.returncode != 0 and "digest mismatch" in r.stderr
    assert iid not in image_ids(docker_env)
    assert image_files(engine) == before


def test_diff_id_mismatch_fails_and_leaves_nothing(tmp_path, engine, docker_env, registry):
    tar = regsupport.small_layer_tar(str(tmp_path / "l.tar"), {"x": os.urandom(1000)})
    lying = regsupport.image_config(["sha256:" + "0" * 64])
    push.push("%s/liar:1" % registry.domain, lying, [tar], config=CFG)
    before = image_files(engine)
    r = docker(docker_env, "pull", "%s/liar:1" % registry.domain, check=False)
    assert r.returncode != 0 and "does not match its image config" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "liar" not in docker(docker_env, "images").stdout
    assert image_files(engine) == before


def test_push_all_tags_and_digest_refused(docker_env, registry):
    n = "%s/alltags" % registry.domain
    for t in ("a", "b"):
        docker(docker_env, "tag", "busybox", "%s:%s" % (n, t))
    r = docker(docker_env, "push", n, check=False)  # the CLI adds :latest, which is not there
    assert r.returncode != 0 and "An image does not exist locally with the tag: %s:latest" % n in r.stderr
    out = docker(docker_env, "push", "-a", n).stdout
    assert "a: digest: sha256:" in out and "b: digest: sha256:" in out
    assert out.count("The push refers to repository") == 1
    client = RegistryClient(registry.domain, config=CFG)
    with client.request("GET", "/v2/alltags/tags/list", ["repository:alltags:pull"]) as resp:
        assert sorted(json.loads(resp.read())["tags"]) == ["a", "b"]
    for t in ("a", "b"):
        docker(docker_env, "rmi", "%s:%s" % (n, t))


def test_login_push_pull_with_token_auth(tmp_path, engine, token_registry):
    env = dict(os.environ, DOCKER_HOST=engine.url, DOCKER_CONFIG=str(tmp_path / "docker-config"),
               DOCKER_CLI_HINTS="false")
    d = token_registry.domain
    name = "%s/tokens/app:1" % d
    docker(env, "tag", "busybox", name)
    r = docker(env, "push", name, check=False)  # anonymous may pull, not push
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    bad = docker(env, "login", "-u", "bob", "--password-stdin", d, input="nope\n", check=False)
    assert bad.returncode != 0 and "incorrect username or password" in bad.stderr
    docker(env, "login", "-u", "bob", "--password-stdin", d, input="builder\n")
    docker(env, "push", name)
    docker(env, "logout", d)
    docker(env, "rmi", name)
    docker(env, "pull", name)  # anonymous pull is granted
    assert docker(env, "image", "inspect", "-f", "{{.Id}}", name).returncode == 0
    docker(env, "rmi", name)


def test_pull_all_tags(tmp_path, docker_env, busybox_rootfs_tar, registry):
    n = "%s/every" % registry.domain
    ids = {t: push_image(tmp_path, "%s:%s" % (n, t), [{"t": t.encode()}], busybox_rootfs_tar)[1] for t in ("a", "b")}
    out = docker(docker_env, "pull", "-a", n).stdout
    assert "a: Pulling from every" in out and "b: Pulling from every" in out
    for t, iid in ids.items():
        assert docker(docker_env, "inspect", "-f", "{{.Id}}", "%s:%s" % (n, t)).stdout.strip() == iid
        docker(docker_env, "rmi", "%s:%s" % (n, t))
    r = docker(docker_env, "pull", "-a", "%s/nobody" % registry.domain, check=False)
    assert r.returncode != 0 and "pull access denied for %s/nobody" % registry.domain in r.stderr


def _hostile_tar(path, kind, target):
    import io
    import tarfile
    with tarfile.open(path, "w") as tar:
        if kind == "traversal":
            ti = tarfile.TarInfo("../../../../../../.." + target)
            ti.size = 5
            tar.addfile(ti, io.BytesIO(b"evil\n"))
        else:  # an absolute symlink, then a write through it
            link = tarfile.TarInfo("escape")
            link.type, link.linkname = tarfile.SYMTYPE, os.path.dirname(target)
            tar.addfile(link)
            ti = tarfile.TarInfo("escape/" + os.path.basename(target))
            ti.size = 5
            tar.addfile(ti, io.BytesIO(b"evil\n"))
    return path


@pytest.mark.parametrize("kind", ["traversal", "symlink"])
def test_hostile_layer_is_refused(tmp_path, engine, docker_env, registry, kind):
    target = str(tmp_path / ("outside-" + kind))
    tar = _hostile_tar(str(tmp_path / "evil.tar"), kind, target)
    cfg = regsupport.image_config([regsupport.file_digest(tar)])
    push.push("%s/evil:%s" % (registry.domain, kind), cfg, [tar], config=CFG)
    before = image_files(engine)
    r = docker(docker_env, "pull", "%s/evil:%s" % (registry.domain, kind), check=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "unsafe" in r.stderr.lower() or "refus" in r.stderr.lower(), r.stderr
    assert not os.path.exists(target)
    assert "evil" not in docker(docker_env, "images").stdout
    assert image_files(engine) == before


def test_build_pulls_a_missing_base_image(tmp_path, docker_env, busybox_rootfs_tar, registry):
    base = "%s/buildbase:1" % registry.domain
    push_image(tmp_path, base, [{"etc/base-marker": b"from the registry\n"}], busybox_rootfs_tar)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM %s\nRUN cat /etc/base-marker > /copied\n" % base)
    env = dict(docker_env, DOCKER_BUILDKIT="0")
    docker(env, "build", "-q", "-t", "%s/built:1" % registry.domain, str(ctx), timeout=300)
    out = docker(env, "run", "--rm", "%s/built:1" % registry.domain, "cat", "/copied").stdout
    assert out == "from the registry\n"
    docker(env, "rmi", "%s/built:1" % registry.domain, base)
