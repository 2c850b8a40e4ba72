"""The producer shim end to end: COS event → main_handler → real SQLite queue → messages that parse back."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobqueue import open_queue
from jobqueue.errors import QueueError
from jobqueue.message import JobMessage, Stage, parse
from producer_shim import index
from relay_core import logs
from relay_core.errors import ConfigError
from relay_core.pipelines import PACKAGED

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cos_events"
REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("qcloud_cos", "tencentcloud", "redis", "httpx", "consumer", "vendors")
MiB = 1024 * 1024


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def upload(key: str, size: int = 1029, meta: dict | None = None, event_name: str = "cos:ObjectCreated:Put") -> dict:
    """A one-record event from the real_put sample with another key, size or metadata."""
    event = load("real_put")
    obj = event["Records"][0]["cos"]["cosObject"]
    obj["key"], obj["size"], obj["url"] = f"/1250000000/relay-in/{key}", size, ""
    obj["meta"] = {"ETag": '"d41d8cd98f00b204e9800998ecf8427e"', **(meta or {})}
    event["Records"][0]["event"]["eventName"] = event_name
    return event


class JsonLines(logging.Handler):
    """Keeps every relay log line as the dict the JSON formatter makes of it (bound fields included)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def shim(relay_home):
    index.reset()
    yield index
    index.reset()


@pytest.fixture
def log_lines():
    handler = JsonLines()
    logging.getLogger("relay").addHandler(handler)
    yield handler.lines
    logging.getLogger("relay").removeHandler(handler)


def queued(relay_home: Path) -> list[JobMessage]:
    """Every message on the embedded queue, parsed with the consumer's parser."""
    queue = open_queue(f"sqlite:///{relay_home / 'queue.db'}")
    try:
        received = queue.receive(16, visibility_timeout_s=60)
        return [parse(r.body) for r in received]
    finally:
        queue.close()


# -- happy paths -----------------------------------------------------------------------------
def test_real_sample_is_enqueued_with_the_pipeline_from_metadata(shim, relay_home):
    before = time.time()
    summary = shim.main_handler(load("real_put"), {"request_id": "req-1"})
    [entry] = summary["enqueued"]
    assert summary["skipped"] == []
    assert entry == {
        "taskId": "t-20240415-0001",
        "userId": "u_1001",
        "pipeline": "promo_poster",
        "key": "input/u_1001/t-20240415-0001/original.png",
        "messageId": entry["messageId"],
    }
    json.dumps(summary)  # SCF returns it as JSON
    [message] = queued(relay_home)
    assert (message.task_id, message.user_id, message.pipeline) == (
        "t-20240415-0001",
        "u_1001",
        "promo_poster",
    )
    assert (message.stage, message.seq, message.attempt, message.vendor_task_id) == (Stage.SUBMIT, 0, 0, None)
    assert dataclasses.asdict(message.input) == {
        "bucket": "relay-in-1250000000",
        "key": "input/u_1001/t-20240415-0001/original.png",
        "etag": "9bb58f26192e4ba00f01e2e7b136bbd8",
        "size": 2457600,
    }
    assert before <= message.created_at <= time.time()
    assert message.deadline_at - message.created_at == pytest.approx(900)  # promo_poster.deadline_s


def test_documented_sample_goes_to_the_default_pipeline(shim, relay_home):
    summary = shim.main_handler(load("documented_sample"), {})
    assert [e["pipeline"] for e in summary["enqueued"]] == ["model_pose12"]
    [message] = queued(relay_home)
    assert message.deadline_at - message.created_at == pytest.approx(1800)


def test_multi_record_event_enqueues_the_good_and_logs_the_bad(shim, relay_home, log_lines):
    summary = shim.main_handler(load("multi_record"), {"request_id": "req-2"})
    assert [e["taskId"] for e in summary["enqueued"]] == ["task-a", "task-b"]
    assert [s["key"] for s in summary["skipped"]] == ["input/mallory/../original.jpg"]
    assert sorted(m.task_id for m in queued(relay_home)) == ["task-a", "task-b"]
    [warning] = [line for line in log_lines if line["level"] == "warning"]
    assert warning["key"] == "input/mallory/../original.jpg" and "'..'" in warning["msg"]
    assert warning["request_id"] == "req-2"
    enqueued_logs = [line for line in log_lines if line["msg"] == "enqueued"]
    assert [(line["task_id"], line["request_id"]) for line in enqueued_logs] == [
        ("task-a", "req-2"),
        ("task-b", "req-2"),
    ]


def test_large_multipart_video_fits_its_pipeline(shim, relay_home):
    summary = shim.main_handler(load("multipart_upload"), {})
    assert [(e["pipeline"], e["taskId"]) for e in summary["enqueued"]] == [("video_tryon", "t9")]
    assert queued(relay_home)[0].input.etag == "0f343b0931126a20f133d67c2b018a3b-12"


def test_non_ascii_key_is_enqueued_decoded(shim, relay_home):
    summary = shim.main_handler(load("non_ascii_key"), {})
    assert summary["enqueued"][0]["key"] == "input/u1/t1/原图 正面.jpg"
    assert queued(relay_home)[0].input.key == "input/u1/t1/原图 正面.jpg"


# -- pipeline choice -------------------------------------------------------------------------
def test_routes_pick_the_longest_prefix_and_fall_back_to_the_default(shim, relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_ROUTES", "input/vip=promo_poster, input/vipvid=video_tryon")
    event = {
        "Records": [
            upload("input/vip7/t1/a.jpg")["Records"][0],
            upload("input/vipvid3/t2/a.mp4")["Records"][0],
            upload("input/plain/t3/a.jpg")["Records"][0],
            upload("input/vipvid3/t4/a.jpg", meta={"x-cos-meta-pipeline": "model_pose12"})["Records"][0],
        ]
    }
    summary = shim.main_handler(event, {})
    assert [(e["taskId"], e["pipeline"]) for e in summary["enqueued"]] == [
        ("t1", "promo_poster"),
        ("t2", "video_tryon"),
        ("t3", "model_pose12"),
        ("t4", "model_pose12"),  # metadata beats routes
    ]
    assert {m.task_id: m.pipeline for m in queued(relay_home)} == {
        "t1": "promo_poster",
        "t2": "video_tryon",
        "t3": "model_pose12",
        "t4": "model_pose12",
    }


def test_routes_from_the_pipelines_file_and_the_environment(shim, relay_home, monkeypatch, tmp_path):
    text = PACKAGED.read_text(encoding="utf-8").replace(
        '# "input/vip-" = "promo_poster"', '"input/vip-" = "promo_poster"\n"input/vid-" = "promo_poster"'
    )
    (tmp_path / "pipelines.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("RELAY_PIPELINES", str(tmp_path / "pipelines.toml"))
    monkeypatch.setenv("RELAY_ROUTES", "input/vid-=video_tryon")  # the environment wins on the same prefix
    event = {
        "Records": [
            upload("input/vip-1/t1/a.jpg")["Records"][0],
            upload("input/vid-1/t2/a.mp4")["Records"][0],
        ]
    }
    assert [e["pipeline"] for e in shim.main_handler(event, {})["enqueued"]] == [
        "promo_poster",
        "video_tryon",
    ]


def test_an_unknown_pipeline_name_is_enqueued_for_the_consumer_to_dead_letter_not_defaulted(shim, relay_home):
    summary = shim.main_handler(upload("input/u1/t1/a.jpg", meta={"x-cos-meta-pipeline": "nope"}), {})
    assert summary["skipped"] == [] and len(summary["enqueued"]) == 1
    [message] = queued(relay_home)
    assert message.pipeline == "nope"  # never silently replaced by another pipeline


def test_a_metadata_value_that_cannot_be_a_pipeline_name_is_skipped(shim, relay_home, log_lines):
    summary = shim.main_handler(upload("input/u1/t1/a.jpg", meta={"x-cos-meta-pipeline": "../x y"}), {})
    assert summary["enqueued"] == [] and "is not a pipeline name" in summary["skipped"][0]["reason"]
    [warning] = [line for line in log_lines if line["level"] == "warning"]
    assert (warning["task_id"], warning["key"]) == ("t1", "input/u1/t1/a.jpg")


@pytest.mark.parametrize(
    "size, meta",
    [(50 * MiB + 1, {}), (600 * MiB, {"x-cos-meta-pipeline": "video_tryon"}), (0, {})],
)
def test_empty_and_oversized_uploads_are_enqueued_so_the_task_gets_an_answer(shim, relay_home, size, meta):
    """SUBMIT checks the real object and reports failed 输入文件无效 (tests/unit/test_consumer_steps.py)."""
    summary = shim.main_handler(upload("input/u1/t1/a.jpg", size=size, meta=meta), {})
    assert summary["skipped"] == [] and len(summary["enqueued"]) == 1
    assert [m.input.size for m in queued(relay_home)] == [size]


def test_exactly_the_size_limit_is_accepted(shim, relay_home):
    assert len(shim.main_handler(upload("input/u1/t1/a.jpg", size=50 * MiB), {})["enqueued"]) == 1


# -- failures --------------------------------------------------------------------------------
def test_malformed_events_are_reported_not_raised(shim, relay_home):
    assert shim.main_handler("not an event", {}) == {
        "enqueued": [],
        "skipped": [{"key": "", "reason": "event is a str, not a JSON object"}],
    }
    assert shim.main_handler({"Records": [None]}, None)["skipped"][0]["reason"] == "Records[0]: not a JSON object"


def test_queue_down_raises_so_scf_retries(shim, relay_home, monkeypatch, log_lines):
    monkeypatch.setenv("RELAY_QUEUE", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(QueueError):
        shim.main_handler(load("real_put"), {})
    [error] = [line for line in log_lines if line["level"] == "error"]
    assert "raising so SCF retries" in error["msg"] and error["task_ids"] == ["t-20240415-0001"]
    # an event with nothing to enqueue does not touch the queue at all
    assert shim.main_handler(load("object_removed"), {})["enqueued"] == []


@pytest.mark.parametrize(
    "variable, value",
    [
        ("RELAY_DEFAULT_PIPELINE", "nope"),
        ("RELAY_ROUTES", "input/x=nope"),
        ("RELAY_ROUTES", "no-equals-sign"),
    ],
)
def test_bad_configuration_fails_naming_the_variable(shim, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        shim.main_handler(load("real_put"), {})


# -- warm container cache and nudge seam -----------------------------------------------------
def test_warm_container_reuses_settings_and_queue_until_reset(shim, relay_home, monkeypatch):
    shim.main_handler(load("real_put"), {})
    runtime = shim._runtime
    queue = runtime.queue
    shim.main_handler(load("documented_sample"), {})
    assert shim._runtime is runtime and runtime.queue is queue
    monkeypatch.setenv("RELAY_DEFAULT_PIPELINE", "promo_poster")
    assert shim.main_handler(load("documented_sample"), {})["enqueued"][0]["pipeline"] == "model_pose12"
    shim.reset()
    assert shim.main_handler(load("documented_sample"), {})["enqueued"][0]["pipeline"] == "promo_poster"
    assert len(queued(relay_home)) == 4


def test_nudge_runs_only_when_something_was_enqueued_and_never_fails_the_event(shim, relay_home, monkeypatch):
    calls = []

    def nudge(summary, settings):
        calls.append([e["taskId"] for e in summary["enqueued"]])
        raise RuntimeError("SCF Invoke is down")

    monkeypatch.setattr(index, "_nudge", nudge)
    shim.main_handler(load("object_removed"), {})
    shim.main_handler({"Records": []}, {})
    assert calls == []
    summary = shim.main_handler(load("real_put"), {})
    assert calls == [["t-20240415-0001"]]
    assert len(summary["enqueued"]) == 1 and len(queued(relay_home)) == 1


# -- import weight ---------------------------------------------------------------------------
_PROBE = """
import json, sys, time
started = time.perf_counter()
from producer_shim.index import main_handler
import_s = time.perf_counter() - started
forbidden = {forbidden!r}
heavy = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & set(forbidden))
after_import = heavy()
summary = main_handler(json.load(open(sys.argv[1], encoding="utf-8")), {{"request_id": "probe"}})
print(json.dumps({{"import_s": import_s, "after_import": after_import, "after_call": heavy(),
                  "enqueued": len(summary["enqueued"])}}))
"""


def test_shim_import_and_call_load_no_vendor_consumer_cos_redis_or_httpx(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "RUNNINGHUB_"))}
    env["RELAY_HOME"] = str(tmp_path / "relay")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(forbidden=FORBIDDEN), str(FIXTURES / "real_put.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["after_import"] == [] and result["after_call"] == []
    assert result["enqueued"] == 1
    print(f"producer_shim.index import: {result['import_s'] * 1000:.0f} ms")
    assert result["import_s"] < 5
