"""The job message on the wire: byte for byte what the pydantic model wrote, and every rule it checked."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobqueue.errors import PoisonMessage
from jobqueue.message import MAX_HOPS, InputObject, JobMessage, Stage, parse
from relay_core.field_checks import FieldError

# written by the pydantic JobMessage this module replaced (model_dump_json(exclude_none=True)): messages already in
# queues must read the same, and the bodies written now must not differ by a byte
FULL = (
    '{"v":1,"task_id":"t1","user_id":"u1","pipeline":"model_pose12","stage":"audit","input":{"bucket":'
    '"relay-in-1250000000","key":"input/u1/t1/原图 \\"正面\\"\\\\\\u0001.jpg","etag":"abc","size":12},'
    '"vendor_task_id":"1838000000000000009","audit_job_id":"vid-1","seq":7,"attempt":2,"polls":5,'
    '"created_at":1713160000.123456,"deadline_at":1713161800.0,"not_before":1713160030.5}'
)
MINIMAL = (
    '{"v":1,"task_id":"t1","user_id":"u1","pipeline":"p","stage":"submit","input":{"bucket":"b","key":"k",'
    '"etag":"","size":0},"seq":0,"attempt":0,"polls":0,"created_at":0.0,"deadline_at":1800.5}'
)


_DROP = object()


def body(**changes: object) -> str:
    """MINIMAL with ``changes`` (``"input.size"`` names a field of ``input``; ``_DROP`` removes one)."""
    data = json.loads(MINIMAL)
    for name, value in changes.items():
        target, _, field = name.rpartition(".")
        fields = data[target] if target else data
        if value is _DROP:
            del fields[field]
        else:
            fields[field] = value
    return json.dumps(data, allow_nan=True)


@pytest.mark.parametrize("text", [FULL, MINIMAL])
def test_a_body_reads_back_to_the_same_bytes(text):
    assert parse(text).dumps() == text


def test_the_constructor_writes_the_same_body_as_the_pydantic_model_did():
    message = JobMessage(
        task_id="t1",
        user_id="u1",
        pipeline="model_pose12",
        stage=Stage.AUDIT,
        input=InputObject(bucket="relay-in-1250000000", key='input/u1/t1/原图 "正面"\\\x01.jpg', etag="abc", size=12),
        vendor_task_id="1838000000000000009",
        audit_job_id="vid-1",
        seq=7,
        attempt=2,
        polls=5,
        created_at=1713160000.123456,
        deadline_at=1713161800,  # an int is taken as its float, and written as one
        not_before=1713160030.5,
    )
    assert message.dumps() == FULL and parse(FULL) == message
    assert type(message.deadline_at) is float and message.as_json() == json.loads(FULL)


def test_absent_optional_fields_read_as_their_defaults_and_any_key_order_parses():
    shuffled = json.dumps(dict(reversed(json.loads(MINIMAL).items())))
    for text in (MINIMAL, shuffled, f"  {MINIMAL}\n", MINIMAL.encode()):
        message = parse(text)
        assert (message.vendor_task_id, message.audit_job_id, message.not_before, message.v) == (None, None, None, 1)
        assert message.stage is Stage.SUBMIT and message.dumps() == MINIMAL
    minimal = json.loads(MINIMAL)
    for name in ("seq", "attempt", "polls", "v"):
        del minimal[name]
    del minimal["input"]["etag"]
    assert parse(json.dumps(minimal)).dumps() == MINIMAL


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[1]", "body is not a JSON object"),
        ("{", "body is not JSON"),
        (f"{MINIMAL} {{}}", "body is not JSON: Extra data"),
        (body(colour="red"), "colour: unknown field"),
        (body(**{"input.colour": "red"}), "input.colour: unknown field"),
        (body(task_id=_DROP), "task_id: field required"),
        (body(**{"input.size": _DROP}), "input.size: field required"),
        (body(v=2), "v: unknown message version 2 (this worker reads v1)"),
        (body(v=True), "v: unknown message version True"),
        (body(task_id="a/b"), "task_id: id 'a/b' is not a safe id"),
        (body(user_id=7), "user_id: id 7 is not a safe id"),
        (body(pipeline=""), "pipeline: string should have at least 1 character"),
        (body(pipeline="p" * 65), "pipeline: string should have at most 64 characters"),
        (body(stage="POLL"), "stage: input should be 'submit', 'poll', 'collect', 'audit' or 'report'"),
        (body(stage=["poll"]), "stage: input should be 'submit'"),
        (body(input=[]), "input: input should be an object"),
        (body(**{"input.bucket": ""}), "input.bucket: string should have at least 1 character"),
        (body(**{"input.key": "k" * 851}), "input.key: string should have at most 850 characters"),
        (body(**{"input.size": True}), "input.size: input should be a valid integer"),
        (body(**{"input.size": -1}), "input.size: input should be greater than or equal to 0"),
        (body(vendor_task_id="v" * 129), "vendor_task_id: string should have at most 128 characters"),
        (body(audit_job_id=5), "audit_job_id: input should be a valid string"),
        (body(seq="3"), "seq: input should be a valid integer"),
        (body(seq=2.0), "seq: input should be a valid integer"),
        (body(polls=MAX_HOPS + 1), "polls: input should be less than or equal to 100000"),
        (body(created_at=True), "created_at: input should be a valid number"),
        (body(created_at="0"), "created_at: input should be a valid number"),
        (body(not_before=1e400), "not_before: input should be a finite number"),
    ],
)
def test_poison_names_the_field_and_the_rule(text, reason):
    with pytest.raises(PoisonMessage) as caught:
        parse(text)
    assert reason in str(caught.value)


def test_replace_checks_the_changes_and_next_is_the_successor_hop():
    message = parse(FULL)
    with pytest.raises(FieldError, match="^seq: input should be greater than or equal to 0$"):
        message.replace(seq=-1)
    with pytest.raises(TypeError, match="no field 'colour'"):
        message.replace(colour="red")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.seq = 8  # type: ignore[misc]
    assert message.replace(stage="poll").stage is Stage.POLL and message.stage is Stage.AUDIT
    same_stage, next_stage = message.next(), message.next(Stage.REPORT, polls=6)
    assert (same_stage.seq, same_stage.attempt, same_stage.not_before) == (8, 2, None)
    assert (next_stage.seq, next_stage.stage, next_stage.attempt, next_stage.polls) == (8, Stage.REPORT, 0, 6)
    assert message.next(attempt=3).attempt == 3 and parse(next_stage.dumps()) == next_stage


def test_the_constructor_checks_every_field_too():
    fields = dict(task_id="t1", user_id="u1", pipeline="p", input=InputObject(bucket="b", key="k", size=0))
    assert JobMessage(stage="poll", created_at=0, deadline_at=1, **fields).stage is Stage.POLL
    with pytest.raises(FieldError, match="^deadline_at: input should be a finite number$"):
        JobMessage(stage="poll", created_at=0, deadline_at=float("nan"), **fields)
    with pytest.raises(FieldError, match="^input: input should be an InputObject$"):
        as_dict = {**fields, "input": {"bucket": "b", "key": "k", "size": 0}}
        JobMessage(**as_dict, stage="poll", created_at=0, deadline_at=1)
    with pytest.raises(FieldError, match="^size: input should be a valid integer$"):
        InputObject(bucket="b", key="k", size=1.5)  # type: ignore[arg-type]
