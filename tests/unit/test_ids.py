"""Ids and file names that become object keys: the whole value is checked, a trailing newline included."""

from __future__ import annotations

import json

import pytest

from jobqueue.message import InputObject, JobMessage, Stage
from relay_core.ids import InvalidId, check_id, is_safe_id, output_key, staging_prefix

HOSTILE = ["1234567890\n", "u1\n", "\nu1", "u1\r", "u 1", "../u1", "u1/..", "", "-u1", "_u1", "ü1", "u1\x00", "a" * 65]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ids_are_refused(value):
    assert not is_safe_id(value)
    with pytest.raises(InvalidId):
        check_id(value)
    with pytest.raises(InvalidId):
        staging_prefix(value, "t1")


@pytest.mark.parametrize("name", ["frame_01.jpg\n", "../x.jpg", ".hidden", "a/b.jpg", "x..jpg"])
def test_hostile_file_names_are_refused(name):
    with pytest.raises(InvalidId):
        output_key("u1", "t1", name)


def test_good_ids_pass_and_a_message_with_a_newline_id_is_poison():
    assert check_id("seller-1") == "seller-1" and check_id("A" * 64)
    fields = dict(
        user_id="u1",
        pipeline="promo_poster",
        stage=Stage.SUBMIT,
        input=InputObject(bucket="b-1", key="input/u1/t/original.jpg", size=1),
        created_at=0.0,
        deadline_at=1.0,
    )
    assert JobMessage(task_id="1234567890", **fields).task_id == "1234567890"
    with pytest.raises(ValueError):
        JobMessage(task_id="1234567890\n", **fields)


@pytest.mark.parametrize("field", ["seq", "attempt", "polls"])
def test_hop_counters_are_bounded_so_a_hostile_message_is_poison(field):
    from jobqueue.errors import PoisonMessage
    from jobqueue.message import MAX_HOPS, parse

    body = {
        "v": 1,
        "task_id": "t1",
        "user_id": "u1",
        "pipeline": "promo_poster",
        "stage": "poll",
        "input": {"bucket": "b-1", "key": "input/u1/t1/original.jpg", "size": 1},
        "created_at": 0.0,
        "deadline_at": 1.0,
    }
    assert getattr(parse(json.dumps({**body, field: MAX_HOPS})), field) == MAX_HOPS
    for hostile in (10**30, MAX_HOPS + 1, -1, 1.5):
        with pytest.raises(PoisonMessage, match=field):
            parse(json.dumps({**body, field: hostile}))


@pytest.mark.parametrize("hostile", ["NaN", "Infinity", "-Infinity"])
def test_a_deadline_that_could_never_pass_is_poison(hostile):
    from jobqueue.errors import PoisonMessage
    from jobqueue.message import parse

    body = (
        '{"v":1,"task_id":"t1","user_id":"u1","pipeline":"p","stage":"poll","created_at":0,'
        '"input":{"bucket":"b-1","key":"input/u1/t1/x.jpg","size":1},"deadline_at":' + hostile + "}"
    )
    with pytest.raises(PoisonMessage, match="deadline_at"):
        parse(body)
