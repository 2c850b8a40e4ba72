"""The RunningHub emulator over real HTTP: envelopes, the state timeline, every knob, files, uploads."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time

import httpx
import pytest
import typer

from scf_relay.cli.app import app as cli_app
from vendors.emulator import BLOCK_MARKER, DEFAULT_API_KEY, EmulatorConfig, RunningHubEmulator, TargetSpec
from vendors.emulator.media import make_jpeg

KEY = DEFAULT_API_KEY
POSE = "1912000000000000012"  # model_pose12: 12 jpeg
POSTER = "1912000000000000101"  # promo_poster (ai-app): 1 png
VIDEO = "1912000000000000203"  # video_tryon: 1 mp4


class Clock:
    """A clock the test moves by hand, so task timelines need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def start(clock):
    """start(**knobs) -> a running emulator on the test's clock; all are stopped after the test."""
    running = []

    def _start(**knobs) -> RunningHubEmulator:
        knobs.setdefault("clock", clock)
        emulator = RunningHubEmulator(EmulatorConfig(**knobs)).start()
        running.append(emulator)
        return emulator

    yield _start
    for emulator in running:
        emulator.stop()


@pytest.fixture
def http():
    with httpx.Client(timeout=5) as client:
        yield client


def node(value: str = "api/input.png") -> dict:
    return {"nodeId": "12", "fieldName": "image", "fieldValue": value}


def create(http, emu, target=POSE, value="api/input.png", key=KEY) -> dict:
    return http.post(
        f"{emu.base_url}/task/openapi/create", json={"apiKey": key, "workflowId": target, "nodeInfoList": [node(value)]}
    ).json()


def outputs(http, emu, task_id, key=KEY) -> dict:
    return http.post(f"{emu.base_url}/task/openapi/outputs", json={"apiKey": key, "taskId": task_id}).json()


def legacy_status(http, emu, task_id) -> str:
    answer = http.post(f"{emu.base_url}/task/openapi/status", json={"apiKey": KEY, "taskId": task_id})
    return answer.json()["data"]


def v2_status(http, emu, task_id) -> dict:
    return http.post(
        f"{emu.base_url}/openapi/v2/query", json={"taskId": task_id}, headers={"Authorization": f"Bearer {KEY}"}
    ).json()


def finished(clock, emu) -> None:
    clock.now += emu.config.queue_s + emu.config.job_s + 0.01


# -- defaults and the timeline --------------------------------------------------------------------------


def test_defaults_serve_every_packaged_pipeline():
    config = EmulatorConfig()
    assert config.targets[POSE] == TargetSpec(12, "jpeg", inputs=(("12", "image"), ("31", "text")))
    assert config.targets[POSTER] == TargetSpec(1, "png", inputs=(("7", "image"),))
    assert config.targets[VIDEO] == TargetSpec(1, "mp4", inputs=(("3", "video"),))
    assert (config.api_key, config.job_s, config.queue_s, config.concurrency) == (KEY, 2.0, 0.5, 8)


def test_state_timeline_queued_running_success(start, clock, http):
    emu = start(queue_s=1.0, job_s=3.0)
    answer = create(http, emu)
    assert answer["code"] == 0 and answer["data"]["taskStatus"] == "QUEUED"
    task_id = answer["data"]["taskId"]
    assert isinstance(task_id, str) and len(task_id) == 19 and task_id.isdigit()
    assert json.loads(answer["data"]["promptTips"])["node_errors"] == {}

    assert outputs(http, emu, task_id)["code"] == 813
    assert legacy_status(http, emu, task_id) == v2_status(http, emu, task_id)["status"] == "QUEUED"
    clock.now += 1.0
    assert outputs(http, emu, task_id)["code"] == 804
    assert legacy_status(http, emu, task_id) == v2_status(http, emu, task_id)["status"] == "RUNNING"
    clock.now += 2.99
    assert outputs(http, emu, task_id)["code"] == 804
    clock.now += 0.02
    done = outputs(http, emu, task_id)
    assert done["code"] == 0 and len(done["data"]) == 12
    assert {item["fileType"] for item in done["data"]} == {"jpg"}
    assert all(item["fileUrl"].startswith(f"{emu.base_url}/files/{task_id}-") for item in done["data"])
    assert legacy_status(http, emu, task_id) == "SUCCESS"
    v2 = v2_status(http, emu, task_id)
    assert v2["status"] == "SUCCESS"
    assert [r["url"] for r in v2["results"]] == [i["fileUrl"] for i in done["data"]]
    [task] = emu.tasks
    assert (task.task_id, task.kind, task.target_id, task.nodes) == (task_id, "workflow", POSE, (node(),))


@pytest.mark.parametrize(
    ("target", "magic", "content_type"),
    [
        (POSE, b"\xff\xd8\xff", "image/jpeg"),
        (POSTER, b"\x89PNG\r\n\x1a\n", "image/png"),
        (VIDEO, b"ftyp", "video/mp4"),
    ],
)
def test_result_files_are_served_with_their_magic_bytes(start, clock, http, target, magic, content_type):
    emu = start()
    if target == POSTER:
        answer = http.post(
            f"{emu.base_url}/task/openapi/ai-app/run",
            json={"apiKey": KEY, "webappId": target, "nodeInfoList": [node()]},
        ).json()
    else:
        answer = create(http, emu, target)
    task_id = answer["data"]["taskId"]
    url = f"{emu.base_url}/files/{task_id}-01.{ {POSE: 'jpg', POSTER: 'png', VIDEO: 'mp4'}[target] }"
    assert http.get(url).status_code == 404  # not finished yet
    finished(clock, emu)
    [first, *_] = outputs(http, emu, task_id)["data"]
    assert first["fileUrl"] == url
    response = http.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == content_type
    assert magic in response.content[:8] and BLOCK_MARKER not in response.content
    assert http.get(url.replace("-01.", "-99.")).status_code == 404
    assert http.get(f"{emu.base_url}/files/nothing.jpg").status_code == 404


def test_task_ids_are_seeded_and_can_come_as_numbers(start, http):
    first = [create(http, start(seed=7))["data"]["taskId"] for _ in range(1)]
    again = [create(http, start(seed=7))["data"]["taskId"] for _ in range(1)]
    assert first == again
    emu = start(task_id_as_number=True)
    raw = http.post(
        f"{emu.base_url}/task/openapi/create", json={"apiKey": KEY, "workflowId": POSE, "nodeInfoList": [node()]}
    ).text
    task_id = json.loads(raw)["data"]["taskId"]
    assert isinstance(task_id, int) and f'"taskId": {task_id}' in raw and str(task_id) == emu.tasks[0].task_id


# -- forced outcomes --------------------------------------------------------------------------------------


def test_emulate_fail_ends_805_with_a_failed_reason(start, clock, http):
    emu = start()
    task_id = create(http, emu, value="emulate:fail")["data"]["taskId"]
    finished(clock, emu)
    answer = outputs(http, emu, task_id)
    assert answer["code"] == 805
    reason = answer["data"]["failedReason"]
    assert {"node_id", "node_name", "exception_type", "exception_message", "traceback"} <= set(reason)
    assert legacy_status(http, emu, task_id) == "FAILED"
    v2 = v2_status(http, emu, task_id)
    assert v2["status"] == "FAILED" and v2["errorMessage"]


def test_emulate_block_marks_the_last_output(start, clock, http):
    emu = start()
    task_id = create(http, emu, value="photo emulate:block")["data"]["taskId"]
    finished(clock, emu)
    urls = [item["fileUrl"] for item in outputs(http, emu, task_id)["data"]]
    contents = [http.get(url).content for url in urls]
    assert [BLOCK_MARKER in c for c in contents] == [False] * 11 + [True]


def test_emulate_never_stays_running(start, clock, http):
    emu = start()
    task_id = create(http, emu, value="emulate:never")["data"]["taskId"]
    clock.now += 10_000
    assert outputs(http, emu, task_id)["code"] == 804


def test_emulate_node_error_comes_back_in_prompt_tips(start, http):
    emu = start()
    data = create(http, emu, value="emulate:node-error")["data"]
    assert json.loads(data["promptTips"])["node_errors"]["12"]


def test_uploaded_content_can_force_the_outcome(start, clock, http):
    emu = start()
    content = make_jpeg(seed=1, marker=b"emulate:fail")
    uploaded = http.post(
        f"{emu.base_url}/task/openapi/upload",
        data={"apiKey": KEY, "fileType": "image"},
        files={"file": ("in.jpg", content, "image/jpeg")},
    ).json()
    file_name = uploaded["data"]["fileName"]
    assert uploaded["code"] == 0 and file_name.startswith("api/") and file_name.endswith(".jpg")
    task_id = create(http, emu, value=file_name)["data"]["taskId"]
    finished(clock, emu)
    assert outputs(http, emu, task_id)["code"] == 805


# -- knobs ------------------------------------------------------------------------------------------------


def test_wrong_key_is_802_everywhere(start, http):
    emu = start()
    task_id = create(http, emu)["data"]["taskId"]
    assert create(http, emu, key="nope")["code"] == 802
    assert outputs(http, emu, task_id, key="nope")["code"] == 802
    account = http.post(f"{emu.base_url}/uc/openapi/accountStatus", json={"apikey": "nope"}).json()
    assert account["code"] == 802
    upload = http.post(
        f"{emu.base_url}/task/openapi/upload", data={"apiKey": "nope"}, files={"file": ("a.png", b"x")}
    ).json()
    assert upload["code"] == 802
    v2 = http.post(
        f"{emu.base_url}/openapi/v2/query", json={"taskId": task_id}, headers={"Authorization": "Bearer nope"}
    )
    assert v2.status_code == 401


def test_unknown_targets_and_tasks(start, http):
    emu = start()
    assert create(http, emu, target="404")["code"] == 380
    app = http.post(
        f"{emu.base_url}/task/openapi/ai-app/run", json={"apiKey": KEY, "webappId": "404", "nodeInfoList": []}
    ).json()
    assert app["code"] == 901
    assert outputs(http, emu, "1234567890123456789")["code"] == 807
    bad_nodes = http.post(
        f"{emu.base_url}/task/openapi/create",
        json={"apiKey": KEY, "workflowId": POSE, "nodeInfoList": [{"nodeId": "1"}]},
    ).json()
    assert bad_nodes["code"] == 803
    assert emu.tasks == []


def test_concurrency_limit_is_421_until_a_task_ends(start, clock, http):
    emu = start(concurrency=2)
    assert [create(http, emu)["code"] for _ in range(3)] == [0, 0, 421]
    finished(clock, emu)
    assert create(http, emu)["code"] == 0


def test_balance_is_spent_and_zero_is_812(start, http):
    emu = start(balance=2)
    assert [create(http, emu)["code"] for _ in range(3)] == [0, 0, 812]
    account = http.post(f"{emu.base_url}/uc/openapi/accountStatus", json={"apikey": KEY}).json()["data"]
    assert account["remainCoins"] == "0" and account["currentTaskCounts"] == "2"


def test_rates_of_one_apply_to_every_task(start, clock, http):
    failing, never, blocking = start(fail_rate=1.0), start(never_finish_rate=1.0), start(block_rate=1.0)
    ids = {emu: create(http, emu)["data"]["taskId"] for emu in (failing, never, blocking)}
    finished(clock, failing)
    assert outputs(http, failing, ids[failing])["code"] == 805
    assert outputs(http, never, ids[never])["code"] == 804
    last = outputs(http, blocking, ids[blocking])["data"][-1]["fileUrl"]
    assert BLOCK_MARKER in http.get(last).content


def test_http_5xx_rate_answers_502_before_doing_anything(start, http):
    emu = start(http_5xx_rate=1.0)
    response = http.post(
        f"{emu.base_url}/task/openapi/create", json={"apiKey": KEY, "workflowId": POSE, "nodeInfoList": [node()]}
    )
    assert response.status_code == 502 and emu.tasks == []


def test_garbage_rate_does_the_work_but_answers_html(start, http):
    emu = start(garbage_rate=1.0)
    response = http.post(
        f"{emu.base_url}/task/openapi/create", json={"apiKey": KEY, "workflowId": POSE, "nodeInfoList": [node()]}
    )
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert len(emu.tasks) == 1


def test_force_codes_and_live_knobs(start, http):
    emu = start()
    emu.config.force_codes["/task/openapi/create"] = 1505
    assert create(http, emu)["code"] == 1505 and emu.tasks == []
    emu.config.force_codes.clear()
    emu.config.balance = 0
    assert create(http, emu)["code"] == 812


def test_delay_holds_the_answer_after_the_work(start, http):
    emu = start(delay_s=0.3)
    began = time.monotonic()
    assert create(http, emu)["code"] == 0
    assert time.monotonic() - began >= 0.3
    emu.config.delay_s = 5.0
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            f"{emu.base_url}/task/openapi/create",
            json={"apiKey": KEY, "workflowId": POSE, "nodeInfoList": [node()]},
            timeout=0.2,
        )
    assert len(emu.tasks) == 2  # the task exists although its id never came back


def test_delay_runs_on_the_injected_sleep_under_a_virtual_clock(start, clock, http):
    def virtual_sleep(seconds: float) -> None:
        clock.now += seconds

    emu = start(delay_s=60.0, sleep=virtual_sleep, queue_s=1.0, job_s=30.0)
    began = time.monotonic()
    task_id = create(http, emu)["data"]["taskId"]  # created at 1000, answered at 1060: done by then
    assert outputs(http, emu, task_id)["code"] == 0
    assert clock.now == 1120.0 and time.monotonic() - began < 5
    assert emu.state_of(task_id).value == "SUCCESS"


def test_rates_must_be_probabilities():
    with pytest.raises(ValueError, match="fail_rate"):
        EmulatorConfig(fail_rate=1.5, targets={})


# -- uploads, cancel, account -----------------------------------------------------------------------------


def test_upload_size_cap_is_809(start, http):
    emu = start(max_upload_bytes=1000)
    small = http.post(
        f"{emu.base_url}/task/openapi/upload", data={"apiKey": KEY}, files={"file": ("a.png", b"x" * 1000)}
    ).json()
    big = http.post(
        f"{emu.base_url}/task/openapi/upload", data={"apiKey": KEY}, files={"file": ("a.png", b"x" * 1001)}
    ).json()
    assert (small["code"], big["code"]) == (0, 809)


def test_upload_accepts_a_chunked_body(start, http):
    emu = start()

    class Unsized(io.RawIOBase):  # no fileno, not seekable: httpx must send it chunked
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            return self._data.readinto(buffer)

    content = make_jpeg(seed=3)
    answer = http.post(
        f"{emu.base_url}/task/openapi/upload",
        data={"apiKey": KEY},
        files={"file": ("in.jpg", Unsized(content), "image/jpeg")},
    ).json()
    assert answer["code"] == 0
    assert emu.book.upload(answer["data"]["fileName"]) == ("in.jpg", content)


def test_cancel_stops_an_unfinished_task_only(start, clock, http):
    emu = start()
    running = create(http, emu)["data"]["taskId"]
    done = create(http, emu)["data"]["taskId"]
    finished(clock, emu)
    running_later = create(http, emu)["data"]["taskId"]
    for task_id in (done, running_later):
        answer = http.post(f"{emu.base_url}/task/openapi/cancel", json={"apiKey": KEY, "taskId": task_id})
        assert answer.json()["code"] == 0
    assert emu.task(running_later).cancelled
    assert not emu.task(done).cancelled and not emu.task(running).cancelled
    assert outputs(http, emu, running_later)["code"] == 805
    assert v2_status(http, emu, running_later)["status"] == "CANCEL"
    assert legacy_status(http, emu, running_later) == "FAILED"
    assert outputs(http, emu, done)["code"] == 0
    unknown = http.post(f"{emu.base_url}/task/openapi/cancel", json={"apiKey": KEY, "taskId": "1"}).json()
    assert unknown["code"] == 807


# -- lifecycle, CLI and logs ------------------------------------------------------------------------------


def test_stop_refuses_connections_even_on_kept_alive_ones(http):
    with RunningHubEmulator(EmulatorConfig()) as emu:
        base_url = emu.base_url
        assert http.post(f"{base_url}/uc/openapi/accountStatus", json={"apikey": KEY}).json()["code"] == 0
    with pytest.raises(httpx.TransportError):
        http.post(f"{base_url}/uc/openapi/accountStatus", json={"apikey": KEY})


def test_the_command_offers_every_knob_with_the_config_defaults():
    command = typer.main.get_command(cli_app).commands["emulator"].commands["runninghub"]
    options = {param.name: param.default for param in command.params}
    knobs = ("host", "api_key", "job_s", "queue_s", "concurrency", "fail_rate", "http_5xx_rate")
    knobs += ("never_finish_rate", "block_rate", "garbage_rate", "balance", "seed", "delay_s", "max_upload_bytes")
    defaults = EmulatorConfig(targets={})
    assert {knob: options[knob] for knob in knobs} == {knob: getattr(defaults, knob) for knob in knobs}
    assert options["port"] == 8765


def test_the_command_serves_with_the_knobs_given(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "RUNNINGHUB_"))}
    knobs = ["--job-s", "0.5", "--fail-rate", "0.25", "--seed", "3", "--api-key", "k-123456", "--balance", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scf_relay.cli.app", "emulator", "runninghub", "--port", "0", *knobs],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stderr is not None
        listening = json.loads(proc.stderr.readline())
        assert listening["msg"] == "runninghub emulator listening" and "k-123456" not in json.dumps(listening)
        assert {k: listening["knobs"][k] for k in ("job_s", "fail_rate", "seed", "balance")} == {
            "job_s": 0.5,
            "fail_rate": 0.25,
            "seed": 3,
            "balance": 3,
        }
        account = httpx.post(
            f"{listening['base_url']}/uc/openapi/accountStatus", json={"apikey": "k-123456"}, timeout=5
        )
        assert account.json()["data"]["remainCoins"] == "3"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_one_log_line_per_request_without_the_key(start, http):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("relay.vendor.emulator")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        emu = start()
        create(http, emu)
        http.post(f"{emu.base_url}/uc/openapi/accountStatus", json={"apikey": KEY})
        deadline = time.monotonic() + 2
        while len(records) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    paths = [getattr(r, "path", None) for r in records if r.getMessage() == "request"]
    assert paths == ["/task/openapi/create", "/uc/openapi/accountStatus"]
    assert all(KEY not in str(vars(r)) for r in records)
