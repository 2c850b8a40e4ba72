"""End to end in virtual time: the emulator calls the webhook route, the hint finishes the task at once; without a
webhook polling still does; the first poll learns the pipeline's runtime."""

from __future__ import annotations

import pytest

from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack
from vendors.emulator.media import make_jpeg

JOB_S = 30.0
OUTPUTS = "/task/openapi/outputs"


def _run(tmp_path, name, *, webhooks, tasks=1, knobs=None, env=None):
    """Run ``tasks`` promo_poster uploads one after another; returns (stack facts per task)."""
    emulator = {"job_s": JOB_S, "queue_s": 0.5, **(knobs or {})}
    facts = []
    with LocalStack(tmp_path / name, clock=VirtualClock(), emulator=emulator, webhooks=webhooks, env=env) as stack:
        for n in range(tasks):
            task_id = f"t{n}"
            before = len([r for r in stack.emulator.requests if r[1] == OUTPUTS])
            stack.deliver(stack.upload(task_id, "u1", "promo_poster", make_jpeg(n)))
            assert stack.run_until_terminal(timeout_s=300)
            [report] = stack.receiver.by_task()[task_id]
            assert report.body["status"] == "done"
            vendor = stack.emulator.task(report.body["vendorTaskId"])
            queries = len([r for r in stack.emulator.requests if r[1] == OUTPUTS]) - before
            facts.append({"lag_s": report.at - vendor.ends_at, "queries": queries})
        estimate = stack.svc.ledger.runtime_estimate("promo_poster")
        facts.append({"webhook_calls": stack.emulator.webhook_calls, "estimate": estimate})
    return facts


def test_the_webhook_hint_reports_within_a_moment_of_the_vendor_finishing(tmp_path):
    [polled, _] = _run(tmp_path, "polled", webhooks=False)
    [hinted, extra] = _run(tmp_path, "hinted", webhooks=True)
    [call] = extra["webhook_calls"]
    assert call.status == 200 and "/runninghub/t0/" in call.url
    assert hinted["lag_s"] <= 1.5
    assert hinted["queries"] <= polled["queries"]


def test_a_webhook_that_never_comes_leaves_polling_to_finish_the_task(tmp_path):
    [task, extra] = _run(tmp_path, "lost", webhooks=True, knobs={"webhook_delay_s": None})
    assert extra["webhook_calls"] == [] and task["queries"] >= 2


def test_a_late_duplicate_webhook_costs_no_status_query(tmp_path):
    # the receiver's answer is lost twice: the emulator retries, the later calls find the task finished
    [task, extra] = _run(tmp_path, "dupes", webhooks=True, knobs={"webhook_delay_s": 0.0})
    assert len(extra["webhook_calls"]) == 1 and task["queries"] >= 1


@pytest.mark.parametrize("estimate", ["1", "0"])
def test_the_first_poll_learns_the_pipelines_runtime(tmp_path, estimate):
    facts = _run(tmp_path, "learn", webhooks=False, tasks=6, env={"RELAY_POLL_FROM_ESTIMATE": estimate})
    later = facts[3:6]
    learned = facts[-1]["estimate"]
    if estimate == "1":
        assert learned is not None and JOB_S - 3 <= learned.estimate_s <= JOB_S + 10
        assert sum(f["queries"] for f in later) <= 3 * len(later)  # two or three status queries a task, not 8-9
    else:
        assert learned is None
        assert sum(f["queries"] for f in later) >= 4 * len(later)  # the policy's backoff from 3 s


def test_a_create_whose_answer_is_lost_finishes_by_its_webhook_with_one_vendor_job(tmp_path):
    emulator = {"job_s": JOB_S, "queue_s": 0.5, "drop_create_response_next": 1}
    with LocalStack(tmp_path / "s", clock=VirtualClock(), emulator=emulator, webhooks=True) as stack:
        stack.deliver(stack.upload("t0", "u1", "promo_poster", make_jpeg(0)))
        assert stack.run_until_terminal(timeout_s=300)
        [report] = stack.receiver.by_task()["t0"]
        [job] = stack.emulator.tasks  # the create made one job, whose answer we never read
        assert report.body["status"] == "done" and report.body["vendorTaskId"] == job.task_id
        assert report.at - job.ends_at <= 1.5  # resumed by the webhook, not by an operator
        record = stack.svc.ledger.get("t0")
        assert record.adopted_at is not None and stack.views["t0"].dead_letter is None


def test_a_lost_create_answer_with_no_webhook_waits_until_the_deadline_then_goes_to_an_operator(tmp_path):
    emulator = {"job_s": JOB_S, "queue_s": 0.5, "drop_create_response_next": 1, "webhook_delay_s": None}
    with LocalStack(tmp_path / "s", clock=VirtualClock(), emulator=emulator, webhooks=True) as stack:
        started = stack.clock()
        stack.deliver(stack.upload("t0", "u1", "promo_poster", make_jpeg(0)))
        assert stack.run_until_terminal(timeout_s=1200)
        view = stack.views["t0"]
        assert view.dead_letter is not None and "no webhook named a job before the deadline" in view.dead_letter
        deadline_s = stack.svc.pipelines.get("promo_poster").deadline_s
        assert stack.clock() - started >= deadline_s and len(stack.emulator.tasks) == 1
        assert stack.receiver.by_task().get("t0") in (None, [])
