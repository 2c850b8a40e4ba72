"""The ledger is pruned on a schedule by the timer consumer and the worker, never more often than the interval."""

from __future__ import annotations

from consumer.housekeeping import Housekeeping
from relay_core.domain import Outcome, Status
from tests.unit.step_harness import ScriptedVendor, make_services

DAY = 86400.0


def test_prunes_records_past_retention_once_per_interval(tmp_path, relay_home):
    now = [1_000_000.0]
    svc = make_services(tmp_path, ScriptedVendor(), clock=lambda: now[0])
    try:
        svc.ledger.record_outcome("old", Outcome(Status.DONE), now[0])
        now[0] += svc.ledger.retention_s + DAY
        svc.ledger.record_outcome("new", Outcome(Status.DONE), now[0])
        chores = Housekeeping(interval_s=3600)
        assert chores.run_if_due(svc) == {"pruned": 1}
        assert svc.ledger.get("old") is None and svc.ledger.get("new") is not None
        now[0] += 60
        assert chores.run_if_due(svc) is None  # not due yet
        now[0] += 3600
        assert chores.run_if_due(svc) == {"pruned": 0}
    finally:
        svc.close()


def test_a_failing_prune_is_logged_and_retried_next_interval(tmp_path, relay_home):
    svc = make_services(tmp_path, ScriptedVendor())
    svc.ledger.close()  # every ledger call now fails
    try:
        assert Housekeeping(interval_s=1).run_if_due(svc) == {"pruned": None, "error": "BackendUnavailable"}
    finally:
        svc.queue.close()
