"""guest/util: the helpers a start uses, made without the modules it no longer imports."""

import datetime
import os
import re
import stat

from hostbridge.guest import util


def test_now_rfc3339_is_format_time_of_now():
    before = datetime.datetime.now(datetime.timezone.utc)
    text = util.now_rfc3339()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}000Z", text), text
    assert before <= util.parse_time(text) <= after
    assert util.format_time(util.parse_time(text)) == text


def test_new_id_is_64_hex_digits_and_fresh():
    ids = {util.new_id() for _ in range(100)}
    assert len(ids) == 100 and all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)


def test_atomic_write_leaves_the_file_with_its_mode_and_no_temp_file(tmp_path):
    path = str(tmp_path / "f.json")
    util.write_json(path, {"a": 1}, mode=0o640)
    util.atomic_write(path, b"two", mode=0o600, durable=False)
    assert open(path, "rb").read() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ["f.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = str(tmp_path / "f")
    util.atomic_write(path, b"old")
    try:
        util.atomic_write(path, object())  # not bytes: the write fails
    except TypeError:
        pass
    assert open(path, "rb").read() == b"old" and os.listdir(str(tmp_path)) == ["f"]


def test_the_engine_id_is_a_random_uuid_kept_in_the_root(tmp_path):
    import types
    import uuid

    from hostbridge.guest.engine import Engine
    eng = types.SimpleNamespace(root=str(tmp_path))
    eid = Engine._engine_id(eng)
    u = uuid.UUID(eid)
    assert str(u) == eid and u.version == 4 and u.variant == uuid.RFC_4122
    (tmp_path / "other").mkdir()
    assert Engine._engine_id(eng) == eid and Engine._engine_id(types.SimpleNamespace(root=str(tmp_path / "other"))) != eid
