"""RunningHubClient over real HTTP against the emulator: every mapping of states, codes and faults."""

from __future__ import annotations

import io
import logging

import httpx
import pytest

from vendors import runninghub_wire as wire
from vendors.base import NodeInput, SubmitRequest, VendorState
from vendors.emulator import EmulatorConfig, RunningHubEmulator, TargetSpec
from vendors.emulator.media import make_jpeg, make_mp4
from vendors.errors import (
    AmbiguousSubmit,
    AuthError,
    BalanceError,
    InputRejected,
    VendorBusy,
    VendorConfigError,
    VendorError,
    VendorTaskFailed,
    VendorUnavailable,
)
from vendors.runninghub import RunningHubClient, _upload_kind

KEY = "sk-test-0123456789abcdef"
WORKFLOW = "wf-pose"
APP = "app-poster"
EMPTY = "wf-empty"  # finishes without output
TARGETS = {WORKFLOW: TargetSpec(3, "jpeg"), APP: TargetSpec(1, "png"), EMPTY: TargetSpec(0, "png")}
CREATE = "/task/openapi/create"
OUTPUTS = "/task/openapi/outputs"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def finish(self, emulator: RunningHubEmulator) -> None:
        self.now += emulator.config.queue_s + emulator.config.job_s + 0.01


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def emulator(clock):
    with RunningHubEmulator(EmulatorConfig(api_key=KEY, targets=dict(TARGETS), clock=clock)) as emu:
        yield emu


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


def make_client(http, base_url: str, key: str = KEY, **kwargs) -> RunningHubClient:
    client = RunningHubClient(base_url, key, client=http, **kwargs)
    client.retry_base_s = 0.01  # keep read retries fast
    return client


@pytest.fixture
def client(http, emulator):
    return make_client(http, emulator.base_url)


def request(value: str = "api/in.png", *, kind: str = "workflow", target: str = WORKFLOW, **kwargs):
    return SubmitRequest(kind=kind, target_id=target, nodes=(NodeInput("12", "image", value),), **kwargs)


def posts(emulator, path: str) -> int:
    return sum(1 for method, p, _ in emulator.requests if method == "POST" and p == path)


def assert_key_hidden(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(exc.__context__), repr(exc.__cause__)):
        assert KEY not in text


# -- upload -----------------------------------------------------------------------------------------------


def test_upload_streams_a_file_and_returns_the_file_name(client, emulator, tmp_path):
    content = make_jpeg(seed=4)
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with path.open("rb") as stream:
        file_name = client.upload(stream, "input/u1/t1/photo.jpg", len(content))
    assert file_name.startswith("api/") and file_name.endswith(".jpg")
    assert emulator.book.upload(file_name) == ("photo.jpg", content)


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (make_jpeg(seed=1), "x.bin", ("image", "jpeg")),  # the bytes win over the name
        (make_mp4(seed=1), "x.jpg", ("video", "mp4")),
        (b"\x00" * 32, "clip.MOV", ("video", None)),
        (b"\x00" * 32, "pic.webp", ("image", None)),
        (b"\x00" * 32, "data.txt", ("input", None)),
    ],
)
def test_upload_file_type_from_bytes_then_extension(content, name, expected):
    stream = io.BytesIO(content)
    stream.seek(3)
    assert _upload_kind(stream, name) == expected  # the head is what httpx sends: from offset 0
    assert stream.tell() == 3  # sniffing does not move the stream


def test_upload_over_the_limit_is_rejected_before_sending(client, emulator):
    with pytest.raises(InputRejected) as caught:
        client.upload(io.BytesIO(b"x"), "big.png", client.max_upload_bytes + 1)
    assert caught.value.code == 809 and posts(emulator, "/task/openapi/upload") == 0


def test_upload_809_from_the_vendor_is_input_rejected(client, emulator):
    emulator.config.max_upload_bytes = 100
    with pytest.raises(InputRejected) as caught:
        client.upload(io.BytesIO(b"x" * 200), "in.png", 200)
    assert caught.value.code == 809


def test_upload_faults_are_transient(client, emulator):
    emulator.config.http_5xx_next = 1
    with pytest.raises(VendorUnavailable):
        client.upload(io.BytesIO(b"x"), "in.png", 1)
    emulator.config.force_codes["/task/openapi/upload"] = 808
    with pytest.raises(VendorUnavailable) as caught:
        client.upload(io.BytesIO(b"x"), "in.png", 1)
    assert caught.value.code == 808


# -- submit -----------------------------------------------------------------------------------------------


def test_submit_workflow_sends_the_node_list(client, emulator):
    task_id = client.submit(request("api/a.png", instance_type="plus"))
    [task] = emulator.tasks
    assert task_id == task.task_id and len(task_id) == 19
    assert (task.kind, task.target_id, task.instance_type) == ("workflow", WORKFLOW, "plus")
    assert task.nodes == ({"nodeId": "12", "fieldName": "image", "fieldValue": "api/a.png"},)


def test_submit_ai_app_uses_webapp_id(client, emulator):
    task_id = client.submit(request(kind="ai-app", target=APP))
    assert emulator.task(task_id).kind == "ai-app" and emulator.task(task_id).target_id == APP


def test_task_id_sent_as_a_number_stays_exact(client, emulator):
    emulator.config.task_id_as_number = True
    task_ids = [client.submit(request()) for _ in range(5)]
    assert task_ids == [task.task_id for task in emulator.tasks]
    assert all(isinstance(t, str) and int(t) > 2**53 for t in task_ids)  # past float precision


def test_node_errors_are_our_side_and_the_task_is_cancelled(client, emulator):
    with pytest.raises(VendorConfigError) as caught:
        client.submit(request("emulate:node-error"))
    assert "12" in str(caught.value)
    [task] = emulator.tasks
    assert task.cancelled


def test_unknown_kind_is_our_side(client, emulator):
    with pytest.raises(VendorConfigError):
        client.submit(request(kind="lora"))
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (801, AuthError),
        (802, AuthError),
        (806, AuthError),
        (811, AuthError),
        (812, BalanceError),
        (301, VendorConfigError),
        (380, VendorConfigError),
        (433, VendorConfigError),
        (803, VendorConfigError),
        (901, VendorConfigError),
        (415, VendorBusy),
        (421, VendorBusy),
        (814, VendorBusy),
        (1003, VendorBusy),
        (1520, VendorBusy),
        (809, InputRejected),
        (500, VendorUnavailable),
        (808, VendorUnavailable),
        (1005, VendorUnavailable),
        (1010, VendorUnavailable),
        (1011, VendorUnavailable),
        (1012, VendorUnavailable),
        (1501, VendorTaskFailed),
        (1505, VendorTaskFailed),
        (4242, VendorUnavailable),  # unknown codes: transient, keeping the number
    ],
)
def test_submit_codes_map_to_errors(client, emulator, code, error):
    emulator.config.force_codes[CREATE] = code
    with pytest.raises(error) as caught:
        client.submit(request())
    assert type(caught.value) is error and caught.value.code == code
    assert str(code) in str(caught.value)


def test_real_rejections_from_the_emulator(client, emulator, http):
    with pytest.raises(VendorConfigError) as caught:
        client.submit(request(target="no-such-workflow"))
    assert caught.value.code == 380
    with pytest.raises(VendorConfigError) as caught:
        client.submit(request(kind="ai-app", target="no-such-app"))
    assert caught.value.code == 901
    with pytest.raises(AuthError) as caught:
        make_client(http, emulator.base_url, key="wrong-key-42").submit(request())
    assert caught.value.code == 802
    emulator.config.balance = 0
    with pytest.raises(BalanceError):
        client.submit(request())
    assert emulator.tasks == []


def test_concurrency_limit_is_capacity(client, emulator, clock):
    emulator.config.concurrency = 2
    client.submit(request())
    client.submit(request())
    with pytest.raises(VendorBusy) as caught:
        client.submit(request())
    assert caught.value.code == 421
    clock.finish(emulator)
    client.submit(request())


def test_submit_502_is_ambiguous_and_never_retried(client, emulator):
    emulator.config.http_5xx_next = 1
    with pytest.raises(AmbiguousSubmit) as caught:
        client.submit(request())
    assert caught.value.code == 502 and posts(emulator, CREATE) == 1


def test_submit_read_timeout_is_ambiguous_and_the_task_exists(http, emulator):
    client = make_client(http, emulator.base_url, timeout_s=0.2)
    emulator.config.delay_s = 2.0
    with pytest.raises(AmbiguousSubmit) as caught:
        client.submit(request())
    assert "ReadTimeout" in str(caught.value)
    assert posts(emulator, CREATE) == 1 and len(emulator.tasks) == 1  # created, and billed, once


def test_submit_garbage_is_ambiguous(client, emulator):
    emulator.config.garbage_rate = 1.0
    with pytest.raises(AmbiguousSubmit, match="garbage"):
        client.submit(request())
    assert len(emulator.tasks) == 1


def test_submit_code_0_without_a_task_id_is_ambiguous(client, emulator):
    emulator.config.force_codes[CREATE] = 0  # {code: 0, data: null}
    with pytest.raises(AmbiguousSubmit, match="taskId"):
        client.submit(request())


def test_submit_to_a_closed_port_is_transient(http):
    with RunningHubEmulator(EmulatorConfig(api_key=KEY, targets={})) as stopped:
        base_url = stopped.base_url
    with pytest.raises(VendorUnavailable) as caught:
        make_client(http, base_url).submit(request())
    assert type(caught.value) is VendorUnavailable and "ConnectError" in str(caught.value)


def test_wrong_path_is_our_side(http, emulator):
    with pytest.raises(VendorConfigError) as caught:
        make_client(http, emulator.base_url + "/not-runninghub").submit(request())
    assert caught.value.code == 404


# -- status -----------------------------------------------------------------------------------------------


def test_status_follows_the_timeline(client, emulator, clock):
    task_id = client.submit(request())
    queued = client.status(task_id)
    assert (queued.state, queued.raw_code) == (VendorState.QUEUED, 813)
    clock.now += emulator.config.queue_s
    running = client.status(task_id)
    assert (running.state, running.raw_code) == (VendorState.RUNNING, 804)
    clock.finish(emulator)
    done = client.status(task_id)
    assert done.state is VendorState.SUCCEEDED and len(done.outputs) == 3
    first = done.outputs[0]
    assert first.url == f"{emulator.base_url}/files/{task_id}-01.jpg"
    assert (first.file_type, first.node_id) == ("jpg", "9")


def test_status_of_a_failed_task_has_a_short_detail(client, emulator, clock):
    task_id = client.submit(request("emulate:fail"))
    clock.finish(emulator)
    failed = client.status(task_id)
    assert (failed.state, failed.raw_code) == (VendorState.FAILED, 805)
    assert "torch.OutOfMemoryError" in failed.detail and "CUDA out of memory" in failed.detail
    assert "Traceback" not in failed.detail and "\n" not in failed.detail and len(failed.detail) <= 300


def test_status_of_a_finished_task_without_output_is_failed(client, emulator, clock):
    task_id = client.submit(request(target=EMPTY))
    clock.finish(emulator)
    status = client.status(task_id)
    assert status.state is VendorState.FAILED and status.detail == "finished without output"


def test_status_of_cancelled_and_never_ending_tasks(client, emulator, clock):
    cancelled = client.submit(request())
    never = client.submit(request("emulate:never"))
    client.cancel(cancelled)
    clock.now += 10_000
    assert client.status(cancelled).state is VendorState.FAILED
    assert client.status(never).state is VendorState.RUNNING


@pytest.mark.parametrize("code", [807, 423, 1501, 1505])
def test_status_of_a_missing_or_blocked_task_raises_task_failed(client, emulator, code):
    emulator.config.force_codes[OUTPUTS] = code
    with pytest.raises(VendorTaskFailed) as caught:
        client.status("1234567890123456789")
    assert caught.value.code == code


def test_status_of_an_unknown_task_is_task_failed(client):
    with pytest.raises(VendorTaskFailed):
        client.status("1234567890123456789")


def test_status_retries_transient_faults_then_succeeds(client, emulator):
    task_id = client.submit(request())
    emulator.config.http_5xx_next = 2
    assert client.status(task_id).state is VendorState.QUEUED
    assert posts(emulator, OUTPUTS) == 3


def test_status_gives_up_after_a_few_tries(client, emulator):
    task_id = client.submit(request())
    emulator.config.http_5xx_rate = 1.0
    with pytest.raises(VendorUnavailable) as caught:
        client.status(task_id)
    assert caught.value.code == 502 and posts(emulator, OUTPUTS) == client.read_attempts


def test_status_garbage_and_wrong_shapes_are_transient(client, emulator):
    task_id = client.submit(request())
    emulator.config.garbage_rate = 1.0
    with pytest.raises(VendorUnavailable, match="garbage"):
        client.status(task_id)


def test_status_code_0_with_data_null_means_still_running(client, emulator):
    """The official ComfyUI client treats outputs ``{code: 0, data: null}`` as running, not as garbage."""
    task_id = client.submit(request())
    emulator.config.force_codes[OUTPUTS] = 0  # the emulator answers code 0 with data null
    assert client.status(task_id).state is VendorState.RUNNING


def test_status_read_timeout_is_transient(http, emulator):
    client = make_client(http, emulator.base_url, timeout_s=0.2)
    client.read_attempts = 1
    emulator.config.delay_s = 2.0
    with pytest.raises(VendorUnavailable, match="ReadTimeout"):
        client.status("1234567890123456789")


# -- cancel ------------------------------------------------------------------------------------------------


def test_cancel_cancels_and_swallows_task_side_errors(client, emulator):
    task_id = client.submit(request())
    client.cancel(task_id)
    assert emulator.task(task_id).cancelled
    client.cancel("1234567890123456789")  # not found: logged, not raised
    emulator.config.http_5xx_rate = 1.0
    client.cancel(task_id)  # transient: logged, not raised


def test_cancel_raises_our_side_errors(http, emulator):
    with pytest.raises(AuthError):
        make_client(http, emulator.base_url, key="wrong-key-42").cancel("1234567890123456789")


# -- secrets ----------------------------------------------------------------------------------------------


def test_the_key_never_shows(client, emulator, http, caplog):
    caplog.set_level(logging.DEBUG, logger="relay")
    logger = logging.getLogger("relay.vendor.runninghub")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    errors: list[VendorError] = []
    try:
        for code in (802, 380, 421, 4242):
            emulator.config.force_codes[CREATE] = code
            with pytest.raises(VendorError) as caught:
                client.submit(request())
            errors.append(caught.value)
        emulator.config.force_codes.clear()
        emulator.config.delay_s = 1.0
        with pytest.raises(AmbiguousSubmit) as caught:
            make_client(http, emulator.base_url, timeout_s=0.1).submit(request())
        errors.append(caught.value)
        emulator.config.delay_s = 0.0
        emulator.config.http_5xx_rate = 1.0
        client.cancel("1")
        with pytest.raises(VendorUnavailable) as caught:
            client.status("1")
        errors.append(caught.value)
    finally:
        logger.removeHandler(handler)
    for exc in errors:
        assert_key_hidden(exc)
    assert records and all(KEY not in str(vars(r)) for r in records)
    assert KEY not in repr(client)


# -- bodies the emulator does not send: served by an httpx transport, the client's network seam -----------


def answering(payload: object) -> httpx.Client:
    """An httpx client whose every request gets ``payload`` as a JSON body."""
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=payload)))


@pytest.mark.parametrize(
    "payload",
    [
        {"data": {"taskId": "1"}},  # no code
        ["not", "an", "envelope"],
        {"code": 0, "msg": "success", "data": {"taskId": 1.9e18}},  # a float may have lost digits
        {"code": 0, "msg": "success", "data": {"taskStatus": "QUEUED"}},
    ],
)
def test_wrong_shaped_submit_answers_are_ambiguous(payload):
    with answering(payload) as http:
        with pytest.raises(AmbiguousSubmit):
            RunningHubClient("http://runninghub.test", KEY, client=http).submit(request())


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "QUEUED"},  # v2-shaped where the legacy envelope belongs
        {"code": 0, "data": [{"fileType": "png"}]},  # an output without a URL
        {"code": 0, "data": [{"fileUrl": "file:///etc/passwd"}]},
        {"code": 0, "data": {"remainCoins": "1"}},  # code 0 whose data is not a list of outputs
    ],
)
def test_wrong_shaped_read_answers_are_transient(payload):
    with answering(payload) as http:
        client = make_client(http, "http://runninghub.test")
        with pytest.raises(VendorUnavailable, match="garbage"):
            client.status("1")


# -- workflow JSON (getJsonApiFormat) -------------------------------------------------------------------


def test_workflow_nodes_reads_the_api_format_json(http, clock):
    targets = {WORKFLOW: TargetSpec(3, "jpeg", inputs=(("12", "image"), ("31", "text")))}
    with RunningHubEmulator(EmulatorConfig(api_key=KEY, targets=targets, clock=clock)) as emu:
        nodes = make_client(http, emu.base_url).workflow_nodes(WORKFLOW)
    assert nodes["12"].class_type == "LoadImage" and nodes["12"].fields == {"image"}
    assert nodes["31"].fields == {"text"} and nodes["32"].class_type == "SaveImage"


def test_workflow_nodes_of_an_unknown_workflow_or_a_refused_key(client, http, emulator):
    with pytest.raises(VendorConfigError, match="code 380"):
        client.workflow_nodes("no-such-workflow")
    with pytest.raises(AuthError, match="code 802"):
        make_client(http, emulator.base_url, key="wrong").workflow_nodes(WORKFLOW)


@pytest.mark.parametrize("data", [None, {"prompt": "not json"}, {"prompt": '{"1": {"class_type": "X"}}'}])
def test_workflow_json_of_the_wrong_shape_is_garbage(data):
    with pytest.raises(VendorUnavailable, match="garbage"):
        wire.workflow_nodes_of(data)
