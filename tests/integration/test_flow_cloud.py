"""End to end on the cloud adapters: the embedded demo's flow with COS, CMQ and Tencent moderation.

The real shim and consumer run against local servers that verify every signature: objects go through
``cos-python-sdk-v5`` to a COS-compatible server (``RELAY_STORE=cos://relay-1250000000``), messages through the
CMQ data-plane HTTP API (``RELAY_QUEUE=cmq://``), moderation through the API 3.0 SDK to IMS and VM
(``RELAY_AUDITOR=tencent``); the ledger stays on SQLite. Outcomes must match the embedded default.
"""

from __future__ import annotations

import time

import pytest

from jobqueue.queue.cmq import CmqQueue
from moderation.tencent import TencentAuditor
from objectstore.cos import CosStore
from scf_relay import operator_actions as operator
from scf_relay.demo.stack import BUCKET, LocalStack
from tests.integration.cloud_stack import (
    COS_REGION,
    DLQ_VISIBILITY_S,
    SECRET_KEY,
    TOKEN,
    assert_published,
    local_cloud,
    one_verified_report,
)
from vendors.emulator.media import make_jpeg

FRAMES = [f"frame_{n:02}.jpg" for n in range(1, 13)]
CASES = {  # task id -> (pipeline, input)
    "t-done-pose": ("model_pose12", make_jpeg(1)),
    "t-done-poster": ("promo_poster", make_jpeg(2)),
    "t-done-video": ("video_tryon", make_jpeg(3)),
    "t-vendor-fail": ("promo_poster", make_jpeg(4, marker=b"emulate:fail")),
    "t-blocked": ("model_pose12", make_jpeg(5, marker=b"emulate:block")),
    "t-blocked-video": ("video_tryon", make_jpeg(6, marker=b"emulate:block")),
    "t-not-image": ("promo_poster", b"just some text, not an image at all"),
}
USER = "u1"


@pytest.fixture(scope="module")
def cloud():
    with local_cloud() as servers:
        yield servers


@pytest.fixture(scope="module")
def finished(cloud, tmp_path_factory):
    """Every case uploaded, each COS event delivered twice, the consumer ticked until all are reported.

    The stack is closed afterwards (its environment restored); its receiver and emulator keep what they saw.
    """
    home = tmp_path_factory.mktemp("cloud") / "home"
    with LocalStack(home, env=cloud.env(home)) as stack:
        assert isinstance(stack.svc.store, CosStore)
        assert isinstance(stack.svc.queue, CmqQueue)
        assert isinstance(stack.svc.auditor, TencentAuditor)
        for task_id, (pipeline, data) in CASES.items():
            stack.deliver(stack.upload(task_id, USER, pipeline, data), times=2)  # COS delivers at least once
        assert stack.run_until_terminal(timeout_s=30), {t: v.status for t, v in stack.views.items()}
    return stack, {task_id: one_verified_report(stack, task_id) for task_id in CASES}


def test_done_tasks_publish_their_results_in_the_cos_bucket(cloud, finished):
    _stack, bodies = finished
    assert bodies["t-done-pose"]["status"] == "done"
    assert bodies["t-done-pose"]["resultUrls"] == [f"cos://output/{USER}/t-done-pose/{n}" for n in FRAMES]
    assert bodies["t-done-poster"]["resultUrls"] == [f"cos://output/{USER}/t-done-poster/poster_01.png"]
    assert bodies["t-done-video"]["resultUrls"] == [f"cos://output/{USER}/t-done-video/video_01.mp4"]
    assert_published(cloud, USER, "t-done-pose", FRAMES, "jpeg")
    assert_published(cloud, USER, "t-done-poster", ["poster_01.png"], "png")
    assert_published(cloud, USER, "t-done-video", ["video_01.mp4"], "mp4")
    assert cloud.keys("staging/") == []


def test_failed_and_blocked_tasks_report_failed_and_publish_nothing(cloud, finished):
    _stack, bodies = finished
    fail = bodies["t-vendor-fail"]
    assert fail == {"taskId": "t-vendor-fail", "status": "failed", "errorReason": "生成失败",
                    "vendorTaskId": fail["vendorTaskId"]}  # fmt: skip
    for task_id in ("t-blocked", "t-blocked-video"):
        assert (bodies[task_id]["status"], bodies[task_id]["errorReason"]) == ("failed", "内容违规")
    assert bodies["t-not-image"] == {"taskId": "t-not-image", "status": "failed", "errorReason": "输入文件无效"}
    for task_id in ("t-vendor-fail", "t-blocked", "t-blocked-video", "t-not-image"):
        assert cloud.keys(f"output/{USER}/{task_id}/") == []


def test_one_vendor_submission_per_task_and_nothing_dead(cloud, finished):
    stack, _bodies = finished
    assert len(stack.emulator.tasks) == len(CASES) - 1  # every COS event came twice; t-not-image never went
    assert cloud.cmq.messages("relay_jobs") == []
    assert cloud.cmq.messages("relay_dead") == []


def test_moderation_went_through_ims_and_vm_with_signed_calls(cloud, finished):
    api3 = cloud.api3
    images = api3.calls_of("ImageModeration")
    assert len(images) == len(FRAMES) * 2 + 1  # two pose tasks (12 frames each) and one poster
    assert {(c.service, c.region) for c in images} == {("ims", COS_REGION)}
    created = api3.calls_of("CreateVideoModerationTask")
    assert len(created) == 2
    inputs = [c.params["Tasks"][0]["Input"] for c in created]
    assert {i["Type"] for i in inputs} == {"COS"}  # VM reads the staged object; no URL is handed out
    assert sorted(i["BucketInfo"]["Object"] for i in inputs) == [
        f"staging/{USER}/{task}/video_01.mp4" for task in ("t-blocked-video", "t-done-video")
    ]
    assert {i["BucketInfo"]["Bucket"] for i in inputs} == {BUCKET}
    polls = api3.calls_of("DescribeTaskDetail")
    assert len(polls) >= 2 * (api3.vm.pending_polls + 1)  # PENDING, RUNNING, then FINISH for each video


def test_every_server_saw_only_signed_accepted_requests(cloud, finished):
    operations = cloud.cos.operations(BUCKET)
    kinds = {op for op, _bucket, _key, _status in operations}
    assert {"PutObject", "GetObject", "CopyObject", "ListObjects", "DeleteObject"} <= kinds
    assert [row for row in operations if row[3] in (401, 403)] == []
    assert {"SendMessage", "BatchReceiveMessage", "DeleteMessage"} <= set(cloud.cmq.calls)


def test_no_secret_reaches_the_backend(finished):
    stack, _bodies = finished
    for report in stack.receiver.reports:
        assert SECRET_KEY.encode() not in report.raw and TOKEN.encode() not in report.raw
        assert b"127.0.0.1" not in report.raw  # no vendor or server URL either


def test_our_side_failure_is_dead_lettered_in_the_cmq_dlq_then_redrive_saves_the_task(cloud, tmp_path):
    """Invariant 4 on CMQ: a wrong vendor key dead-letters without a report; fixed and redriven, the task is done.

    Two CMQ facts shape this (docs/platform.md §2): looking at the DLQ receives, so hides, what it sees. The stack
    lists the DLQ on every tick, so the test waits one DLQ visibility timeout before the operator's redrive;
    and the redrive looks each dead letter up again after listing it, which finds it only with a search
    window longer than that timeout (``dlq_search_s``; the cmq:// default of 0 finds nothing).
    """
    cloud.add_queues("relay_ours", "relay_ours_dead")
    home = tmp_path / "home"
    env = {
        **cloud.env(home, "relay_ours", "relay_ours_dead", queue_params=f"&dlq_search_s={DLQ_VISIBILITY_S + 1}"),
        "RUNNINGHUB_API_KEY": "not-our-key",
    }
    with LocalStack(home, env=env) as stack:
        stack.deliver(stack.upload("t-ours", "u3", "promo_poster", make_jpeg(8)))
        assert stack.run_until_terminal(timeout_s=10)
        view = stack.views["t-ours"]
        assert view.dead_letter and "802" in view.dead_letter
        assert stack.receiver.reports == []  # our configuration is at fault: no refund, no report
        assert stack.svc.ledger.get("t-ours").outcome is None

        stack.svc.vendors["runninghub"]._api_key = stack.emulator.config.api_key  # the operator fixes the key
        time.sleep(DLQ_VISIBILITY_S + 0.2)  # what the last tick's listing hid is visible again
        assert len(operator.redrive(stack.queue_admin, stack.svc.ledger, None)) == 1
        view.dead_letter = None
        assert stack.run_until_terminal(timeout_s=15)
        assert one_verified_report(stack, "t-ours")["status"] == "done"
    assert cloud.keys("output/u3/t-ours/") == ["output/u3/t-ours/poster_01.png"]
    assert cloud.cmq.messages("relay_ours_dead") == []
