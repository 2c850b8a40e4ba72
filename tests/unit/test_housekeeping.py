"""Housekeeping: the ledger is pruned, and an outcome whose REPORT message was lost is driven to a report —
never more often than the interval, and never for a task parked in the dead-letter queue."""

from __future__ import annotations

from consumer.decisions import Finish, ToDeadLetter
from consumer.effects import apply, forward
from consumer.housekeeping import Housekeeping, sweep_reports
from jobqueue.message import Stage, parse
from relay_core.domain import Outcome, Status
from tests.unit.step_harness import ScriptedVendor, make_services, message

DAY = 86400.0


def _clocked(tmp_path, now: list[float]):
    return make_services(tmp_path, ScriptedVendor(), clock=lambda: now[0])


def test_prunes_records_past_retention_once_per_interval(tmp_path, relay_home):
    now = [1_000_000.0]
    svc = _clocked(tmp_path, now)
    try:
        svc.ledger.record_outcome("old", Outcome(Status.DONE), now[0])
        svc.ledger.mark_reported("old", now[0])
        now[0] += svc.ledger.retention_s + DAY
        chores = Housekeeping(interval_s=3600)
        assert chores.run_if_due(svc) == {"reports_resent": 0, "pruned": 1}
        assert svc.ledger.get("old") is None
        now[0] += 60
        assert chores.run_if_due(svc) is None  # not due yet
        now[0] += 3600
        assert chores.run_if_due(svc) == {"reports_resent": 0, "pruned": 0}
    finally:
        svc.close()


def test_a_lost_report_message_is_sent_again_after_the_sweep_delay(tmp_path, relay_home):
    now = [1_000_000.0]
    svc = _clocked(tmp_path, now)
    try:
        msg = message(Stage.AUDIT, seq=4)
        forward(svc, msg, Finish(Outcome(Status.DONE, ("output/u1/t1/poster_01.png",))))
        [sent] = svc.queue.receive(10, visibility_timeout_s=30)
        svc.queue.delete(sent.receipt)  # the queue loses the REPORT message
        assert sweep_reports(svc, now[0] + 60) == 0  # too early: the normal report path may still be at work
        now[0] += svc.settings.report_sweep_after_s + 1
        assert sweep_reports(svc, now[0]) == 1
        [again] = svc.queue.receive(10, visibility_timeout_s=30)
        report = parse(again.body)
        assert report.stage is Stage.REPORT and report.task_id == "t1" and report.seq == 5
        svc.ledger.mark_reported("t1", now[0])
        assert sweep_reports(svc, now[0] + 10 * DAY) == 0  # reported: never again
    finally:
        svc.close()


def test_a_report_chain_that_moved_on_is_resent_at_its_next_hop(tmp_path, relay_home):
    now = [1_000_000.0]
    svc = _clocked(tmp_path, now)
    try:
        forward(svc, message(Stage.AUDIT, seq=4), Finish(Outcome(Status.DONE)))
        svc.ledger.advance("t1", 9, now[0])  # REPORT retried up to hop 9, then its message was lost
        now[0] += svc.settings.report_sweep_after_s + 1
        sweep_reports(svc, now[0])
        seqs = sorted(parse(r.body).seq for r in svc.queue.receive(10, visibility_timeout_s=30))
        assert seqs == [5, 10]  # the original REPORT (still queued here) and the sweep's, at the next hop
    finally:
        svc.close()


def test_a_task_parked_in_the_dead_letter_queue_is_left_to_the_operator(tmp_path, relay_home):
    now = [1_000_000.0]
    svc = _clocked(tmp_path, now)
    try:
        forward(svc, message(Stage.AUDIT, seq=4), Finish(Outcome(Status.FAILED, error_reason="生成失败")))
        [report] = svc.queue.receive(10, visibility_timeout_s=30)
        apply(svc, report, parse(report.body), ToDeadLetter("report: backend rejected the report"))
        now[0] += svc.settings.report_sweep_after_s + 1
        assert sweep_reports(svc, now[0]) == 0
        assert svc.ledger.begin_hop("t1", 5, 30, now[0]).state.value == "run"  # an operator redrives it
        assert [r.task_id for r in svc.ledger.unreported(now[0] + 1)] == ["t1"]  # unparked
    finally:
        svc.close()


def test_a_failing_chore_is_logged_and_retried_next_interval(tmp_path, relay_home):
    svc = make_services(tmp_path, ScriptedVendor())
    svc.ledger.close()  # every ledger call now fails
    try:
        done = Housekeeping(interval_s=1).run_if_due(svc)
        assert done == {"reports_resent": None, "pruned": None, "errors": ["BackendUnavailable", "BackendUnavailable"]}
    finally:
        svc.queue.close()
