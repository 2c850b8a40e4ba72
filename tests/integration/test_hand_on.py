"""Hops handed on in place on Redis (queue and ledger on one server): the runner of a hop whose successor is due at
once runs that successor itself, and a crash in the chain leaves the successor to come back."""

from __future__ import annotations

import pytest

from bench.two_workers import fast_pipelines
from consumer.drain import Budget, DrainStats, drain
from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack
from vendors.emulator.media import make_jpeg

pytestmark = [pytest.mark.timeout(60), pytest.mark.redis]
EMULATOR = {"job_s": 0.1, "queue_s": 0.0, "concurrency": 1000, "seed": 5}


def _stack(tmp_path, redis_url, **env):
    settings = {
        "RELAY_QUEUE": redis_url,
        "RELAY_LEDGER": redis_url,
        "RELAY_PIPELINES": str(fast_pipelines(tmp_path)),
        "RELAY_VISIBILITY_TIMEOUT_S": "5",
        **env,
    }
    return LocalStack(tmp_path / "relay", clock=VirtualClock(), emulator=dict(EMULATOR), env=settings)


def _run(stack, totals: DrainStats, rounds: int = 200) -> None:
    for _ in range(rounds):
        stats = drain(stack.svc, Budget(5.0))
        for name in ("received", "handed_on", "sent", "acked", "errors"):
            setattr(totals, name, getattr(totals, name) + getattr(stats, name))
        stack.refresh()
        if all(view.terminal() for view in stack.views.values()):
            return
        stack.clock.advance(0.5)
    raise AssertionError("tasks did not finish")


def test_collect_and_audit_join_the_poll_that_found_the_job_done_and_report_runs_in_place(tmp_path, redis_url):
    totals = DrainStats()
    with _stack(tmp_path, redis_url) as stack:
        stack.deliver(stack.upload("t1", "u1", "model_pose12", make_jpeg(1)))
        _run(stack, totals)
        [report] = stack.receiver.by_task()["t1"]
        record = stack.svc.ledger.get("t1")
    assert report.body["status"] == "done" and len(report.body["resultUrls"]) == 12
    assert totals.handed_on == 1  # poll (+ collect + audit, one hop) → (outcome) report, without a new message
    assert totals.received == record.seq + 1 - 1  # every other hop was a message of its own
    assert record.reported_at is not None and record.hop_seq == record.seq
    assert record.vendor_done_at is not None  # the poll's sighting, recorded with the outcome at the hop's end


def test_a_crash_right_after_the_hand_on_leaves_report_to_finish_the_task_once(tmp_path, redis_url):
    """The runner dies just after the hand-on that recorded the outcome and gave the message REPORT's body: that
    message comes back after its visibility timeout."""
    totals = DrainStats()
    with _stack(tmp_path, redis_url) as stack:
        commit = stack.svc.hop_commit
        real, calls = commit.hand_on, []

        def hand_on_then_die(*args, **kwargs):
            hop = real(*args, **kwargs)
            calls.append(hop.state)
            if len(calls) == 1:
                raise RuntimeError("runner died here")
            return hop

        commit.hand_on = hand_on_then_die
        stack.deliver(stack.upload("t1", "u1", "promo_poster", make_jpeg(2)))
        _run(stack, totals)
        reports = stack.receiver.by_task()["t1"]
        submissions = len(stack.emulator.tasks)
    assert len(calls) == 1 and totals.errors == 1  # it died once; the redelivered REPORT was reported
    assert [r.body["status"] for r in reports] == ["done"] and submissions == 1


class Killed(BaseException):
    """The runner's process ends here (nothing in the consumer catches a BaseException that is not an Exception)."""


@pytest.mark.parametrize("stage", ["collect", "audit"])
def test_a_crash_inside_a_joined_stage_reruns_the_poll_hop_once(tmp_path, redis_url, stage):
    """The runner dies while COLLECT (its first download) or AUDIT (its first moderation call) runs in the poll's
    hop: nothing was written since the poll's lease, so the POLL message comes back after its visibility timeout,
    asks the vendor again and finishes the task with one submission and one report."""
    with _stack(tmp_path, redis_url) as stack:
        svc, died = stack.svc, []
        target = svc.fetcher if stage == "collect" else svc.auditor
        name = "session" if stage == "collect" else "audit_image"
        real = getattr(target, name)

        def die_once(*args, **kwargs):
            if not died:
                died.append(stack.svc.ledger.get("t1"))
                raise Killed(stage)
            return real(*args, **kwargs)

        setattr(target, name, die_once)
        stack.deliver(stack.upload("t1", "u1", "promo_poster", make_jpeg(2)))
        totals = DrainStats()
        for _ in range(200):
            try:
                _run(stack, totals, rounds=1)
                break
            except Killed:
                stack.clock.advance(0.5)
            except AssertionError:
                pass
        else:
            raise AssertionError("the task did not finish")
        statuses = [r for r in stack.emulator.requests if r[1].endswith("/outputs")]
        reports = stack.receiver.by_task()["t1"]
        record = stack.svc.ledger.get("t1")
    [before] = died
    assert before.vendor_done_at is None and before.outcome is None  # nothing recorded by the joined stages
    assert [r.body["status"] for r in reports] == ["done"] and len(stack.emulator.tasks) == 1
    assert len(statuses) >= 2  # the rerun hop asked the vendor again
    assert record.vendor_done_at is not None and record.reported_at is not None


def test_a_runner_hands_on_only_with_room_left_in_its_budget_and_no_stop_asked():
    from consumer.drain import _room_for_more
    from relay_core.settings import load

    settings = load(step_margin_s=5.0)
    assert _room_for_more(Budget(None), settings, lambda: False)
    assert not _room_for_more(Budget(None), settings, lambda: True)  # stopping: the successor goes to the queue
    assert not _room_for_more(Budget(9.0), settings, lambda: False)  # not two margins left
    assert _room_for_more(Budget(11.0), settings, lambda: False)
