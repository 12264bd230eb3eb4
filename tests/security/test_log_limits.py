"""A chatty container does not fill the disk: ``--log-opt max-size``/``max-file`` are honoured.

The container writes a bounded amount (``seq 1 60000``: ~350 KB of output, ~3.5 MB of json-file
records); with ``max-size=100k max-file=3`` what stays on disk is bounded, and ``docker logs``
reads the kept lines across the rotated files, in order and without a gap.
"""

import os

import pytest

LINES = 60000


def _wait(backend, cid):
    r = backend.docker("wait", cid, timeout=120)
    assert r.returncode == 0, r.stderr


def _log_dir(backend, cid):
    """The directory holding the container's log files (dockerd's local driver: local-logs/)."""
    path = backend.docker("inspect", "-f", "{{.LogPath}}", cid).stdout.strip()
    if path:
        return os.path.dirname(path)
    return os.path.join(backend.home, "data", "containers", cid, "local-logs")


def _log_files(directory):
    return {f: os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
            if "log" in f and os.path.isfile(os.path.join(directory, f))}


def _numbers(text):
    return [int(x) for x in text.split()]


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_max_size_and_max_file_bound_the_log(backend, driver):
    r = backend.docker("run", "-d", "--log-driver", driver, "--log-opt", "max-size=100k", "--log-opt",
                       "max-file=3", "busybox", "seq", "1", str(LINES))
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        _wait(backend, cid)
        files = _log_files(_log_dir(backend, cid))
        assert 1 <= len(files) <= 3, files
        assert sum(files.values()) < 3 * 110 * 1024, files  # one record may pass max-size
        nums = _numbers(backend.docker("logs", cid).stdout)
        assert nums[-1] == LINES and nums[0] > 1  # the oldest lines were rotated away
        assert nums == list(range(nums[0], LINES + 1)), "lines lost or reordered across rotated files"
        if driver == "json-file":
            current = [f for f in files if f.endswith(".log")][0]
            with open(os.path.join(_log_dir(backend, cid), current), "rb") as f:
                in_current = f.read().count(b"\n")
            assert len(nums) > in_current  # read across the rotated files, not just the last
            tail = _numbers(backend.docker("logs", "--tail", str(in_current + 10), cid).stdout)
            assert tail == list(range(LINES - in_current - 9, LINES + 1))
    finally:
        backend.docker("rm", "-f", cid)


def test_max_size_alone_bounds_the_log(backend):
    """max-size without max-file: dockerd 20.10 here keeps ``.log.1`` beside ``.log``; ours
    truncates the one file (docker's documented max-file=1). Both are bounded."""
    r = backend.docker("run", "-d", "--log-opt", "max-size=50k", "busybox", "seq", "1", str(LINES))
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        _wait(backend, cid)
        files = _log_files(_log_dir(backend, cid))
        assert len(files) <= 2 and sum(files.values()) < 2 * 60 * 1024, files
        assert _numbers(backend.docker("logs", "--tail", "1", cid).stdout) == [LINES]
    finally:
        backend.docker("rm", "-f", cid)


@pytest.mark.parametrize("opt,message", [
    ("max-size=abc", "invalid size: 'abc'"),
    ("max-size=0", "max-size must be a positive number"),
    ("max-size=-1", "invalid size: '-1'"),
    ("max-file=0", "max-file cannot be less than 1"),
    ("max-file=x", 'strconv.Atoi: parsing "x": invalid syntax'),
    ("bogus=1", "unknown log opt 'bogus' for json-file log driver"),
])
def test_bad_log_opts_are_refused_with_dockerds_text(backend, opt, message):
    r = backend.docker("run", "--rm", "--log-opt", opt, "busybox", "true")
    assert r.returncode == 125
    assert message in r.stderr
