"""Mount destinations swapped for symlinks by another container (CVE-2021-30465's class).

Container A shares a volume with the containers the test starts and swaps, in that volume, a
directory with a symlink to a host path, millions of times. Each new container B mounts a
tmpfs at the directory's place (``-v vol:/mnt --mount type=tmpfs,destination=/mnt/d``). The
mount must land inside B's tree: B sees its tmpfs; were it resolved by path on the host
side, it would go on the host path and B would not see it at all. A start that fails is
allowed (a symlink to ``/`` resolved inside B puts the tmpfs over B's own root: runc and ours
then find no ``sh``); a container that runs without its tmpfs is not.
"""

import pytest

from tests.security.racer import swapper  # noqa: F401  (fixture)

RUNS = 25


@pytest.mark.parametrize("target", ["/", "hostpath"])
def test_mount_destination_swapped_for_symlink_stays_in_the_container(backend, swapper, tmp_path, target):
    host = tmp_path / "hostside"
    host.mkdir()
    link = "/" if target == "/" else str(host)
    vol = "hb-mntrace-%s-%s" % (backend.name, "root" if target == "/" else "host")
    backend.docker("volume", "rm", "-f", vol)
    r = backend.docker("run", "-d", "-v", vol + ":/v", "-v", swapper + ":/swapper:ro", "busybox", "sh", "-c",
                       "mkdir -p /v/d; ln -s %s /v/l; /swapper /v/d /v/l 100000000" % link)
    assert r.returncode == 0, r.stderr
    racer = r.stdout.strip()
    outside = 0
    try:
        for _ in range(RUNS):
            r = backend.docker("run", "--rm", "-v", vol + ":/mnt", "--mount",
                               "type=tmpfs,destination=/mnt/d,tmpfs-size=1234k", "busybox", "sh", "-c",
                               "grep -c size=1234k /proc/self/mountinfo")
            if r.returncode == 0 and r.stdout.strip() == "0":
                outside += 1
        assert outside == 0, "%d of %d tmpfs mounts landed outside the container" % (outside, RUNS)
        assert sorted(host.iterdir()) == []  # nothing made on the host path
    finally:
        backend.docker("rm", "-f", racer)
        backend.docker("volume", "rm", "-f", vol)
