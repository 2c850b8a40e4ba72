"""Hops handed on in place on Redis (queue and ledger on one server): the runner of a hop whose successor is due at
once runs that successor itself, and a crash in the chain leaves the successor to come back."""

from __future__ import annotations

import pytest

from bench.two_workers import fast_pipelines
from consumer import dispatch
from consumer.drain import Budget, DrainStats, drain
from jobqueue.ledger.base import HopState
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


def test_collect_audit_and_report_join_the_poll_that_found_the_job_done(tmp_path, redis_url):
    totals = DrainStats()
    with _stack(tmp_path, redis_url) as stack:
        stack.deliver(stack.upload("t1", "u1", "model_pose12", make_jpeg(1)))
        _run(stack, totals)
        [report] = stack.receiver.by_task()["t1"]
        record = stack.svc.ledger.get("t1")
        pending = stack.svc.queue.stats().pending
    assert report.body["status"] == "done" and len(report.body["resultUrls"]) == 12
    assert totals.handed_on == 1  # poll (+ collect + audit) → (outcome) report, in the poll's hop
    assert totals.received == record.seq + 1  # every hop was a message of its own: submit, then the polls
    assert record.reported_at is not None and record.hop_seq == record.seq and pending == 0
    assert record.vendor_done_at is not None  # the poll's sighting, recorded with the outcome


def _die_after_first(calls: list, real, when=lambda kwargs: True):
    def wrapped(*args, **kwargs):
        answer = real(*args, **kwargs)
        if when(kwargs) and not calls:
            calls.append(answer.state)
            raise RuntimeError("runner died here")
        return answer

    return wrapped


def test_a_crash_right_after_the_outcome_is_recorded_in_the_hop_reports_once(tmp_path, redis_url):
    """The runner dies just after recording the outcome in the poll's hop, before reporting: the POLL message comes
    back after its visibility timeout, finds the outcome unreported and reports it."""
    totals, calls = DrainStats(), []
    with _stack(tmp_path, redis_url) as stack:
        ledger = stack.svc.ledger
        ledger.finish_in_hop = _die_after_first(calls, ledger.finish_in_hop)
        stack.deliver(stack.upload("t1", "u1", "promo_poster", make_jpeg(2)))
        _run(stack, totals)
        reports = stack.receiver.by_task()["t1"]
        submissions = len(stack.emulator.tasks)
        record = ledger.get("t1")
    assert calls == [HopState.RUN] and totals.errors == 1  # it died once, after the outcome's write
    assert [r.body["status"] for r in reports] == ["done"] and submissions == 1
    assert record.reported_at is not None


def test_a_crash_right_after_the_hand_on_leaves_report_to_finish_the_task_once(tmp_path, redis_url, monkeypatch):
    """Without room to join (no stage joins here), the outcome is recorded by the hand-on that gives the message
    REPORT's body; the runner dies just after it: that message comes back after its visibility timeout."""
    monkeypatch.setattr(dispatch, "JOIN_LEASE_SHARE", 2.0)  # more than a whole lease: nothing ever joins
    totals, calls = DrainStats(), []
    with _stack(tmp_path, redis_url) as stack:
        commit = stack.svc.hop_commit
        commit.hand_on = _die_after_first(calls, commit.hand_on, lambda kwargs: kwargs.get("outcome") is not None)
        stack.deliver(stack.upload("t1", "u1", "promo_poster", make_jpeg(2)))
        _run(stack, totals)
        reports = stack.receiver.by_task()["t1"]
        submissions = len(stack.emulator.tasks)
    assert calls == [HopState.RUN] and totals.errors == 1  # it died once; the redelivered REPORT was reported
    assert totals.handed_on >= 2  # COLLECT and AUDIT were handed on, not joined
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
