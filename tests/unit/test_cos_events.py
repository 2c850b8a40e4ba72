"""COS trigger events → ParsedRecord | Rejected, record by record, never raising; reasons name the field path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from producer_shim.events import ParsedRecord, Rejected, is_safe_file_name, parse_records

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cos_events"
APPID, SHORT = "1250000000", "relay-in"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def record(
    key: str = "input/u1/t1/original.jpg",
    *,
    event_name: str = "cos:ObjectCreated:Put",
    size: object = 1029,
    meta: object = None,
    url_key: str | None = None,
    raw_key: str | None = None,
) -> dict:
    """One record shaped like the samples in tests/fixtures/cos_events/.

    ``raw_key``/``url_key`` override the two spellings of the key (in ``cosObject.key`` and ``cosObject.url``).
    """
    url_path = quote(key) if url_key is None else url_key
    return {
        "cos": {
            "cosSchemaVersion": "1.0",
            "cosObject": {
                "url": f"http://{SHORT}-{APPID}.cos.ap-guangzhou.myqcloud.com/{url_path}",
                "meta": {"ETag": '"abc123"', "Content-Type": "image/jpeg"} if meta is None else meta,
                "vid": "",
                "key": f"/{APPID}/{SHORT}/{key if raw_key is None else raw_key}",
                "size": size,
            },
            "cosBucket": {"region": "gz", "name": SHORT, "appid": APPID, "cosRegion": "ap-guangzhou"},
        },
        "event": {"eventName": event_name, "eventVersion": "1.0", "eventTime": 1650016156},
    }


def only(event: dict) -> ParsedRecord | Rejected:
    results = parse_records(event)
    assert len(results) == 1
    return results[0]


def accepted(event: dict) -> ParsedRecord:
    result = only(event)
    assert isinstance(result, ParsedRecord), result
    return result


def rejected(event: dict) -> Rejected:
    result = only(event)
    assert isinstance(result, Rejected), result
    return result


# -- samples ---------------------------------------------------------------------------------
def test_documented_sample():
    parsed = accepted(load("documented_sample"))
    assert parsed == ParsedRecord(
        index=0,
        bucket="testpic-1253970026",
        key="input/user123/task123/original.jpg",
        size=1029,
        etag="",  # the documented sample has no ETag
        event_name="cos:ObjectCreated:*",
        event_time=1545205770.0,
        region="cd",  # no cosRegion in the documented sample: the short code
        user_id="user123",
        task_id="task123",
        file_name="original.jpg",
        metadata={},
    )


def test_real_sample_with_cos_region_etag_and_metadata():
    parsed = accepted(load("real_put"))
    assert (parsed.bucket, parsed.key) == ("relay-in-1250000000", "input/u_1001/t-20240415-0001/original.png")
    assert (parsed.user_id, parsed.task_id, parsed.file_name) == ("u_1001", "t-20240415-0001", "original.png")
    assert (parsed.size, parsed.etag, parsed.region) == (
        2457600,
        "9bb58f26192e4ba00f01e2e7b136bbd8",
        "ap-shanghai",
    )
    assert parsed.metadata == {"pipeline": "promo_poster", "source": "web"}


def test_multi_record_event_handles_each_record_on_its_own():
    results = parse_records(load("multi_record"))
    assert [type(r) for r in results] == [ParsedRecord, Rejected, ParsedRecord]
    assert [r.task_id for r in results if isinstance(r, ParsedRecord)] == ["task-a", "task-b"]
    bad = results[1]
    assert bad.index == 1 and ".." in bad.reason and bad.key == "input/mallory/../original.jpg"


@pytest.mark.parametrize(
    "event_name",
    ["cos:ObjectCreated:Put", "cos:ObjectCreated:Post", "cos:ObjectCreated:Copy", "cos:ObjectCreated:*"],
)
def test_every_object_created_event_is_accepted(event_name):
    assert accepted({"Records": [record(event_name=event_name)]}).event_name == event_name


def test_complete_multipart_upload():
    parsed = accepted(load("multipart_upload"))
    assert parsed.event_name == "cos:ObjectCreated:CompleteMultipartUpload"
    assert (parsed.etag, parsed.size, parsed.metadata) == (
        "0f343b0931126a20f133d67c2b018a3b-12",
        125829120,
        {"pipeline": "video_tryon"},
    )


@pytest.mark.parametrize("event_name", ["cos:ObjectRemove:Delete", "cos:ObjectRemoved:Delete", "cos:Other"])
def test_removal_and_other_events_are_rejected(event_name):
    event = load("object_removed")
    event["Records"][0]["event"]["eventName"] = event_name
    result = rejected(event)
    assert (result.key, result.reason) == (
        "input/u1/t1/original.jpg",
        f"event {event_name} is not an object creation",
    )


# -- keys ------------------------------------------------------------------------------------
def test_non_ascii_key_raw_in_key_and_encoded_in_url():
    parsed = accepted(load("non_ascii_key"))
    assert (parsed.key, parsed.file_name) == ("input/u1/t1/原图 正面.jpg", "原图 正面.jpg")


def test_non_ascii_key_percent_encoded_in_both():
    key = "input/u1/t1/原图.jpg"
    assert accepted({"Records": [record(key, raw_key=quote(key))]}).key == key


def test_key_without_url_is_taken_raw():
    event = {"Records": [record("input/u1/t1/a.jpg")]}
    del event["Records"][0]["cos"]["cosObject"]["url"]
    assert accepted(event).key == "input/u1/t1/a.jpg"


def test_double_encoding_is_decoded_once_and_refused():
    # the object really is named "%2e%2e": it must not become ".." and is refused for its '%'
    result = rejected({"Records": [record("input/u1/t1/%2e%2e", url_key="input/u1/t1/%252e%252e")]})
    assert result.key == "input/u1/t1/%2e%2e" and "file name" in result.reason


def test_key_and_url_that_disagree_are_rejected():
    result = rejected({"Records": [record("input/u1/t1/a.jpg", url_key="input/u1/t1/b.jpg")]})
    assert (result.key, result.reason) == (
        "input/u1/t1/a.jpg",
        "Records[0].cos.cosObject: key and url name different objects",
    )


@pytest.mark.parametrize(
    "raw_key",
    [
        "input/u1/../t1/a.jpg",
        "input/u1/%2e%2e/a.jpg",
        "input/u1/%2E%2E/a.jpg",
        "input/u1/t1/%2e%2e",
        "input/u1%2F..%2Fx/t1/a.jpg",
        "input//t1/a.jpg",
        "input/u1/./a.jpg",
        "input/u1/t1/a\\b.jpg",
        "input/u1/t1/a%00.jpg",
        "input/u1/t1/sub/a.jpg",
        "input/u1/t1",
        "input/u1/t1/",
        "output/u1/t1/frame_01.jpg",
        "staging/u1/t1/a.jpg",
        "Input/u1/t1/a.jpg",
        "input/u1/t1/.hidden",
        "input/u1/t1/ leading-space.jpg",
        "input/u1/t1/rtl\u202egpj.exe",
        "input/u1/t1/line\nbreak.jpg",
        "input/u1/t1/" + "x" * 256,
    ],
)
def test_hostile_or_unrouted_keys_are_rejected(raw_key):
    event = {"Records": [record(raw_key, url_key=quote(raw_key, safe="/%"))]}
    result = rejected(event)
    assert result.reason


@pytest.mark.parametrize("user_id, task_id", [("-u", "t1"), ("u1", "_t"), ("u" * 65, "t1"), ("u1", "t.1"), ("ü", "t1")])
def test_unsafe_ids_are_rejected(user_id, task_id):
    key = f"input/{user_id}/{task_id}/a.jpg"
    assert "not a safe id" in rejected({"Records": [record(key)]}).reason


def test_safe_file_names():
    assert all(map(is_safe_file_name, ["original.jpg", "原图 正面.jpg", "IMG_0001.HEIC", "a-b_c (1).png"]))
    assert not any(map(is_safe_file_name, ["", ".", "..", ".x", "a/b", "a\\b", "100%.jpg", "a\tb", "x "]))


# -- fields ----------------------------------------------------------------------------------
def test_missing_meta_means_no_etag_and_no_metadata():
    event = {"Records": [record()]}
    del event["Records"][0]["cos"]["cosObject"]["meta"]
    parsed = accepted(event)
    assert (parsed.etag, parsed.metadata) == ("", {})


def test_metadata_names_are_lower_cased_without_the_prefix():
    meta = {
        "X-COS-META-Pipeline": "model_pose12",
        "x-cos-meta-Ref": "abc",
        "x-cos-meta-n": 5,
        "Cache-Control": "x",
    }
    assert accepted({"Records": [record(meta=meta)]}).metadata == {"pipeline": "model_pose12", "ref": "abc"}


def test_region_falls_back_to_the_short_code_and_appid_may_be_a_number():
    event = {"Records": [record()]}
    bucket = event["Records"][0]["cos"]["cosBucket"]
    del bucket["cosRegion"]
    bucket["appid"] = int(APPID)
    parsed = accepted(event)
    assert (parsed.region, parsed.bucket) == ("gz", f"{SHORT}-{APPID}")


def test_string_size_is_tolerated():
    assert accepted({"Records": [record(size="2048")]}).size == 2048


# -- malformed events never raise ------------------------------------------------------------
@pytest.mark.parametrize(
    "event", [None, "text", 42, ["Records"], {}, {"Records": None}, {"Records": "x"}, {"Records": {}}]
)
def test_malformed_events_become_one_rejection(event):
    result = rejected(event)
    assert result.index is None and result.reason


def test_empty_records_list_is_reported():
    assert "empty" in rejected({"Records": []}).reason


def _broken(path: tuple, value: object) -> dict:
    rec = record()
    target = rec
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return rec


_DELETE = object()


_NOT_UTF8 = "Records[0].cos.cosObject.url: has percent-escapes that are not UTF-8"
_BAD_PREFIX = "Records[0].cos.cosObject.key: does not start with /<appid>/<bucket>/ (/1250000000/relay-in/)"


@pytest.mark.parametrize(
    "path, value, reason",
    [
        (("cos",), _DELETE, "Records[0].cos: field required"),
        (("cos",), "x", "Records[0].cos: not a JSON object"),
        (("event",), _DELETE, "Records[0].event: field required"),
        (("event", "eventName"), _DELETE, "Records[0].event.eventName: field required"),
        (("event", "eventName"), 7, "Records[0].event.eventName: input should be a valid string"),
        (("event", "eventName"), "", "Records[0].event.eventName: string should have at least 1 character"),
        (("cos", "cosObject"), [], "Records[0].cos.cosObject: not a JSON object"),
        (("cos", "cosObject", "key"), _DELETE, "Records[0].cos.cosObject.key: field required"),
        (("cos", "cosObject", "key"), "/999/other-bucket/input/u1/t1/original.jpg", _BAD_PREFIX),
        (("cos", "cosObject", "key"), "input/u1/t1/original.jpg", _BAD_PREFIX),
        (("cos", "cosObject", "size"), _DELETE, "Records[0].cos.cosObject.size: field required"),
        (("cos", "cosObject", "size"), -1, "Records[0].cos.cosObject.size: input should be greater than or equal to 0"),
        (("cos", "cosObject", "size"), True, "Records[0].cos.cosObject.size: input should be a valid integer"),
        (("cos", "cosObject", "size"), 1.5, "Records[0].cos.cosObject.size: input should be a valid integer"),
        (("cos", "cosObject", "size"), "²", "Records[0].cos.cosObject.size: input should be a valid integer"),
        (("cos", "cosObject", "meta"), "x", "Records[0].cos.cosObject.meta: not a JSON object"),
        (("cos", "cosObject", "url"), "http://h/%ff%fe", _NOT_UTF8),
        (("cos", "cosBucket"), _DELETE, "Records[0].cos.cosBucket: field required"),
        (("cos", "cosBucket", "appid"), "12ab", "Records[0].cos.cosBucket.appid: string should match pattern"),
        (("cos", "cosBucket", "appid"), None, "Records[0].cos.cosBucket.appid: input should be a valid string"),
        (("cos", "cosBucket", "appid"), True, "Records[0].cos.cosBucket.appid: input should be a valid string"),
        (("cos", "cosBucket", "name"), "Bad_Name", "Records[0].cos.cosBucket.name: string should match pattern"),
        (("cos", "cosBucket", "name"), None, "Records[0].cos.cosBucket.name: input should be a valid string"),
    ],
)
def test_malformed_records_are_rejected_naming_the_field_and_the_others_still_parse(path, value, reason):
    results = parse_records({"Records": [_broken(path, value), "not a record", record("input/u2/t2/b.jpg")]})
    assert [type(r) for r in results] == [Rejected, Rejected, ParsedRecord]
    assert results[0].index == 0 and results[0].reason.startswith(reason)
    assert (results[1].index, results[1].reason) == (1, "Records[1]: not a JSON object")
    assert results[2].task_id == "t2"


def test_malformed_record_among_good_ones_sample():
    results = parse_records(load("malformed_record"))
    assert [type(r) for r in results] == [ParsedRecord, Rejected, Rejected, ParsedRecord]
    assert [r.task_id for r in results if isinstance(r, ParsedRecord)] == ["task-a", "task-d"]
    assert (results[1].index, results[1].key, results[1].reason) == (
        1,
        "",
        "Records[1].cos.cosObject.key: field required; Records[1].cos.cosObject.size: input should be a valid integer",
    )
    assert (results[2].index, results[2].reason) == (2, "Records[2].event.eventName: field required")


def test_many_errors_in_one_record_are_cut_short():
    broken = {"cos": {"cosObject": {}, "cosBucket": {}}, "event": {}}
    reason = only({"Records": [broken]}).reason
    assert reason == (
        "Records[0].cos.cosObject.key: field required; Records[0].cos.cosObject.size: field required; "
        "Records[0].cos.cosBucket.name: field required (and 2 more)"
    )


def test_unknown_fields_are_ignored_at_every_level():
    rec = record()
    for part in (rec, rec["cos"], rec["cos"]["cosObject"], rec["cos"]["cosBucket"], rec["event"]):
        part["futureField"] = {"anything": [1, 2]}
    assert accepted({"Records": [rec], "futureTopLevel": True}).key == "input/u1/t1/original.jpg"


@pytest.mark.parametrize("value", ["soon", None, [1], {"t": 1}])
def test_an_unreadable_event_time_is_dropped_not_fatal(value):
    event = {"Records": [record()]}
    event["Records"][0]["event"]["eventTime"] = value
    assert accepted(event).event_time is None


def test_optional_fields_may_be_absent_or_null():
    rec = record()
    obj, bucket = rec["cos"]["cosObject"], rec["cos"]["cosBucket"]
    obj["url"], obj["vid"] = None, None
    del bucket["region"], bucket["cosRegion"], rec["cos"]["cosSchemaVersion"], rec["event"]["eventTime"]
    parsed = accepted({"Records": [rec]})
    assert (parsed.region, parsed.event_time, parsed.key) == ("", None, "input/u1/t1/original.jpg")


def test_parse_does_not_modify_the_event():
    event = load("real_put")
    before = copy.deepcopy(event)
    parse_records(event)
    assert event == before
