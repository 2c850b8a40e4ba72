"""Housekeeping on a schedule, run by the timer-triggered consumer and by the worker.

* **Report sweep**: a task whose outcome is recorded but whose report the backend has not acknowledged for
  ``RELAY_REPORT_SWEEP_AFTER_S`` (and that is not parked in the dead-letter queue) gets its REPORT hop sent again
  — the safety net for a REPORT message a queue lost. A duplicate of a live REPORT is harmless: the ledger
  admits one runner per hop and the backend drops a repeat by its ``X-Relay-Delivery``.
* **Prune**: ledger records past their retention are deleted.

It runs at most once per ``RELAY_HOUSEKEEPING_INTERVAL_S`` per process (a warm SCF container or a worker).
Failures are logged and retried at the next interval, never raised into the drain.
"""

from __future__ import annotations

import threading
from typing import Any

from consumer.services import Services
from jobqueue.errors import PoisonMessage
from jobqueue.message import parse
from relay_core import logs

log = logs.get("consumer.housekeeping")
SWEEP_BATCH = 100


class Housekeeping:
    """Remembers when it last ran; :meth:`run_if_due` is thread-safe (one runner at a time)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_run_at: float | None = None
        self._lock = threading.Lock()

    def run_if_due(self, svc: Services) -> dict[str, Any] | None:
        """Sweep reports and prune the ledger if ``interval_s`` passed since the last run; returns what it did."""
        now = svc.clock()
        if self.last_run_at is not None and now - self.last_run_at < self.interval_s:
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self.last_run_at = now
            done: dict[str, Any] = {}
            for name, chore in (("reports_resent", sweep_reports), ("pruned", _prune)):
                try:
                    done[name] = chore(svc, now)
                except Exception as exc:  # noqa: BLE001 - housekeeping never stops the consumer
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning(f"housekeeping {name} failed; retried next interval", extra={"error": error})
                    done[name] = None
                    done.setdefault("errors", []).append(type(exc).__name__)
            return done
        finally:
            self._lock.release()


def sweep_reports(svc: Services, now: float) -> int:
    """Send the REPORT hop again for every outcome unreported for longer than the sweep delay; returns how many."""
    resent = 0
    for record in svc.ledger.unreported(now - svc.settings.report_sweep_after_s, SWEEP_BATCH):
        if not record.report_message:
            continue
        try:
            report = parse(record.report_message)
        except PoisonMessage:  # written by an older version: the operator sees it in `tasks stuck`
            continue
        # the next hop the ledger has not handled, so a REPORT chain that moved on is not dropped as stale
        report = report.replace(seq=max(report.seq, record.seq + 1), attempt=0, not_before=None)
        svc.queue.send(report.dumps())
        resent += 1
        with logs.bind(task_id=record.task_id):
            log.warning("report re-sent by the sweep", extra={"unreported_since": record.outcome_at, "seq": report.seq})
    return resent


def _prune(svc: Services, now: float) -> int:
    pruned = svc.ledger.prune(now)
    if pruned:
        log.info("ledger pruned", extra={"pruned": pruned, "retention_s": svc.ledger.retention_s})
    return pruned
