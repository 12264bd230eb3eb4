"""runtime/filewatch.py: real inotify on a temp directory (no root needed)."""

import os
import threading

from hostbridge.guest.containers import logs
from hostbridge.guest.runtime.filewatch import IN_CLOSE_WRITE, IN_MODIFY, DirWatch
from hostbridge.guest.runtime.logs import JsonLogWriter


def test_wait_reports_writes_rotation_and_close(tmp_path):
    w = DirWatch(str(tmp_path))
    try:
        assert w.wait(0) == []  # nothing yet: no event, no wait
        fd = os.open(tmp_path / "a.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, b"x")
        os.replace(tmp_path / "a.log", tmp_path / "a.log.1")
        os.close(fd)
        got = w.wait(5)
        assert any(m & IN_MODIFY and n == "a.log" for m, n in got), got
        # a close after a rotation is reported under the file's new name
        assert [n for m, n in got if m & IN_CLOSE_WRITE] == ["a.log.1"], got
    finally:
        w.close()
    w.close()  # idempotent


def test_follow_wakes_on_each_write_and_ends_when_the_writer_stops(tmp_path):
    """read_batches(follow=True) yields each record as written, then ends once the writer closed
    its log and the 'container' stopped; the writer signals nothing but its file."""
    path = str(tmp_path / "c-json.log")
    writer = JsonLogWriter(path)
    state = {"running": True}
    stopped = threading.Event()

    def wait_exit(timeout):
        stopped.wait(timeout)

    reader = logs.read_batches(path, follow=True, is_running=lambda: state["running"], wait_exit=wait_exit)
    writer.write(1, b"one\n")
    assert [e[1] for e in next(reader)] == ["one\n"]
    writer.write(2, b"two\n")
    assert [(e[0], e[1]) for e in next(reader)] == [(2, "two\n")]
    writer.write(1, b"three")  # no newline: written at close
    writer.close()
    state["running"] = False
    stopped.set()
    assert [e[1] for batch in reader for e in batch] == ["three"]


def test_render_one_frame_per_entry():
    batch = [(1, "a\n", "t1"), (1, "b\n", "t2"), (2, "c\n", "t3")]
    assert logs.render(batch, multiplexed=True) == (b"\x01\0\0\0\0\0\0\x02a\n" + b"\x01\0\0\0\0\0\0\x02b\n"
                                                   + b"\x02\0\0\0\0\0\0\x02c\n")
    assert logs.render(batch, multiplexed=False, timestamps=True) == b"t1 a\nt2 b\nt3 c\n"
