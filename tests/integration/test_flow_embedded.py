"""End to end on the embedded default: real shim, SQLite queue and ledger, local bucket, RunningHub emulator over
HTTP, local marker auditor, signed reports to a receiver. Each outcome ends in exactly one correct report."""

from __future__ import annotations

import pytest

from scf_relay import operator_actions as operator
from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import BUCKET, LocalStack
from tests.integration.flow_helpers import (
    assert_one_verified_report,
    assert_outputs,
    files_under,
    pipelines_with_quick_timeout,
)
from vendors.emulator.media import make_jpeg

FRAMES = [f"frame_{n:02}.jpg" for n in range(1, 13)]


@pytest.fixture
def stack_env(tmp_path, relay_home):
    return {"RELAY_PIPELINES": str(pipelines_with_quick_timeout(tmp_path))}


def test_every_outcome_ends_in_exactly_one_correct_report(tmp_path, stack_env):
    cases = {
        "t-done-pose": ("model_pose12", make_jpeg(1)),
        "t-done-poster": ("promo_poster", make_jpeg(2)),
        "t-done-video": ("video_tryon", make_jpeg(3)),
        "t-vendor-fail": ("promo_poster", make_jpeg(4, marker=b"emulate:fail")),
        "t-blocked": ("model_pose12", make_jpeg(5, marker=b"emulate:block")),
        "t-timeout": ("quick_timeout", make_jpeg(6, marker=b"emulate:never")),
        "t-not-image": ("promo_poster", b"just some text, not an image at all"),
    }
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env) as stack:
        for task_id, (pipeline, data) in cases.items():
            stack.deliver(stack.upload(task_id, "u1", pipeline, data), times=2)  # COS repeats events
        assert stack.run_until_terminal(timeout_s=60)

        bodies = {task_id: assert_one_verified_report(stack, task_id) for task_id in cases}
        assert bodies["t-done-pose"]["status"] == "done"
        assert bodies["t-done-pose"]["resultUrls"] == [f"cos://output/u1/t-done-pose/{n}" for n in FRAMES]
        assert_outputs(stack, "u1", "t-done-pose", FRAMES, "jpeg")
        assert_outputs(stack, "u1", "t-done-poster", ["poster_01.png"], "png")
        assert_outputs(stack, "u1", "t-done-video", ["video_01.mp4"], "mp4")
        assert bodies["t-vendor-fail"] == {
            "taskId": "t-vendor-fail",
            "status": "failed",
            "errorReason": "生成失败",
            "vendorTaskId": bodies["t-vendor-fail"]["vendorTaskId"],
        }
        assert bodies["t-blocked"]["errorReason"] == "内容违规"
        assert bodies["t-timeout"]["errorReason"] == "生成超时"
        assert bodies["t-not-image"]["errorReason"] == "输入文件无效"
        assert "vendorTaskId" not in bodies["t-not-image"]  # never reached the vendor
        for task_id in ("t-vendor-fail", "t-blocked", "t-timeout", "t-not-image"):
            assert files_under(stack.bucket_dir, f"output/u1/{task_id}") == []
        assert files_under(stack.bucket_dir, "staging") == []

        # invariant 2: one vendor submission per task despite every COS event arriving twice
        submitted = [t.nodes for t in stack.emulator.tasks]
        assert len(submitted) == len(cases) - 1
        timed_out = stack.emulator.state_of(bodies["t-timeout"]["vendorTaskId"])
        assert timed_out.value == "CANCEL"  # the vendor job was cancelled, it would bill forever
        # the demo's polls column counts every POLL received, also one whose hop COLLECT, AUDIT and REPORT joined
        assert all(stack.views[t].polls >= 1 for t in ("t-done-pose", "t-done-poster", "t-done-video"))
        assert stack.views["t-not-image"].polls == 0


def test_backend_outage_is_retried_until_one_report_lands(tmp_path, stack_env):
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env, receiver_down_for_s=4) as stack:
        stack.deliver(stack.upload("t-outage", "u2", "promo_poster", make_jpeg(7)))
        assert stack.run_until_terminal(timeout_s=60)
        assert stack.receiver.refused >= 1
        assert assert_one_verified_report(stack, "t-outage")["status"] == "done"


@pytest.mark.parametrize(
    ("knobs", "env", "code"),
    [({}, {"RUNNINGHUB_API_KEY": "not-our-key"}, "802"), ({"balance": 0}, {}, "812")],
    ids=["wrong-api-key", "empty-balance"],
)
def test_our_side_failures_dead_letter_without_report_then_redrive_saves_the_task(
    tmp_path, stack_env, knobs, env, code
):
    with LocalStack(tmp_path / "home", clock=VirtualClock(), emulator=knobs, env={**stack_env, **env}) as stack:
        stack.deliver(stack.upload("t-ours", "u3", "promo_poster", make_jpeg(8)))
        assert stack.run_until_terminal(timeout_s=30)
        view = stack.views["t-ours"]
        assert view.dead_letter and code in view.dead_letter
        assert stack.receiver.reports == []  # no refund for a configuration problem of ours
        assert stack.svc.ledger.get("t-ours").outcome is None

        # the operator fixes the configuration and redrives: the user's task is saved
        stack.emulator.config.balance = 100
        stack.svc.vendors["runninghub"]._api_key = stack.emulator.config.api_key  # the fixed key
        assert operator.redrive(stack.queue_admin, stack.svc.ledger, None)
        view.dead_letter = None
        assert stack.run_until_terminal(timeout_s=30)
        assert assert_one_verified_report(stack, "t-ours")["status"] == "done"


def test_a_dead_letter_of_a_joined_stage_holds_the_poll_and_its_redrive_finishes_the_task(tmp_path, stack_env):
    """AUDIT ran in the poll's hop and hit our configuration: the letter is the POLL message with AUDIT's reason;
    once fixed, its redrive asks the vendor again, keeps what COLLECT staged, moderates and reports once."""
    from jobqueue.message import Stage
    from moderation.errors import AuditConfigError

    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env) as stack:
        auditor = stack.svc.auditor
        real = auditor.audit_image

        def misconfigured(*args, **kwargs):
            raise AuditConfigError("moderation is not enabled for this account")

        auditor.audit_image = misconfigured
        stack.deliver(stack.upload("t-joined", "u3", "promo_poster", make_jpeg(11)))
        assert stack.run_until_terminal(timeout_s=30)
        [dead] = operator.list_dead(stack.queue_admin)
        assert dead.message.stage is Stage.POLL and dead.letter.reason.startswith("audit: ")
        assert files_under(stack.bucket_dir, "staging/u3") and stack.receiver.reports == []
        statuses = sum(path.endswith("/outputs") for _, path, _ in stack.emulator.requests)

        auditor.audit_image = real
        assert operator.redrive(stack.queue_admin, stack.svc.ledger, None)
        stack.views["t-joined"].dead_letter = None
        assert stack.run_until_terminal(timeout_s=30)
        assert assert_one_verified_report(stack, "t-joined")["status"] == "done"
        assert sum(path.endswith("/outputs") for _, path, _ in stack.emulator.requests) == statuses + 1
        assert files_under(stack.bucket_dir, "staging/u3") == [] and files_under(stack.bucket_dir, "output/u3")


def test_operator_fail_reports_failed_once(tmp_path, stack_env):
    env = {**stack_env, "RUNNINGHUB_API_KEY": "not-our-key"}
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=env) as stack:
        stack.deliver(stack.upload("t-give-up", "u4", "promo_poster", make_jpeg(9)))
        assert stack.run_until_terminal(timeout_s=30)
        [dead] = operator.list_dead(stack.queue_admin)
        # a partial publish left behind by an earlier failing run must not survive a failed report
        stack.svc.store.put_bytes(BUCKET, "output/u4/t-give-up/frame_01.jpg", make_jpeg(1))
        result = operator.fail(stack.queue_admin, stack.svc.queue, stack.svc.ledger, dead.message_id)
        assert result["task_id"] == "t-give-up"
        stack.views["t-give-up"].dead_letter = None
        assert stack.run_until_terminal(timeout_s=30)
        body = assert_one_verified_report(stack, "t-give-up")
        assert body["status"] == "failed" and body["errorReason"] == "处理失败"
        assert stack.svc.queue.dead_letters() == []
        assert files_under(stack.bucket_dir, "output/u4") == []


def test_poison_messages_are_dead_lettered_at_once_with_the_reason(tmp_path, stack_env):
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env) as stack:
        stack.svc.queue.send("this is not json")
        stack.svc.queue.send('{"v": 99, "task_id": "t1"}')
        stack.tick()
        letters = sorted(stack.svc.queue.dead_letters(), key=lambda d: d.reason)
        assert [d.receive_count for d in letters] == [1, 1]
        assert "not JSON" in letters[0].reason and "unknown message version 99" in letters[1].reason


def test_hostile_keys_are_skipped_by_the_shim_and_nothing_is_enqueued(tmp_path, stack_env):
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env) as stack:
        event = stack.upload("t-ok", "u5", "promo_poster", make_jpeg(10))
        bad = event["Records"][0]["cos"]["cosObject"]
        bad["key"] = bad["key"].replace("input/u5/t-ok/", "input/../etc/")
        bad["url"] = bad["url"].replace("input/u5/t-ok/", "input/../etc/")
        [summary] = stack.deliver(event)
        assert summary["enqueued"] == [] and summary["skipped"]
        assert stack.svc.queue.stats().pending == 0


def test_results_from_private_hosts_are_refused_without_the_opt_in(tmp_path, stack_env):
    env = {**stack_env, "RELAY_ALLOW_PRIVATE_HOSTS": "0"}
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=env) as stack:
        stack.deliver(stack.upload("t-ssrf", "u6", "promo_poster", make_jpeg(11)))
        assert stack.run_until_terminal(timeout_s=30)
        body = assert_one_verified_report(stack, "t-ssrf")
        assert body["errorReason"] == "生成失败"
        assert files_under(stack.bucket_dir, "output") == []


def test_bucket_layout_is_name_appid(tmp_path, stack_env):
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=stack_env) as stack:
        assert stack.svc.output_bucket == BUCKET == "relay-1250000000"
