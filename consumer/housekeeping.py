"""Housekeeping on a schedule, run by the timer-triggered consumer and by the worker: prune the ledger.

It runs at most once per ``RELAY_HOUSEKEEPING_INTERVAL_S`` per process (a warm SCF container or a worker); a
cold container runs it on its first timer tick, which is cheap: pruning reads an index of creation times.
Failures are logged and retried at the next interval, never raised into the drain.
"""

from __future__ import annotations

import threading
from typing import Any

from consumer.services import Services
from relay_core import logs

log = logs.get("consumer.housekeeping")


class Housekeeping:
    """Remembers when it last ran; :meth:`run_if_due` is thread-safe (one runner at a time)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_run_at: float | None = None
        self._lock = threading.Lock()

    def run_if_due(self, svc: Services) -> dict[str, Any] | None:
        """Prune the ledger if ``interval_s`` passed since the last run; returns what it did, or None."""
        now = svc.clock()
        if self.last_run_at is not None and now - self.last_run_at < self.interval_s:
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self.last_run_at = now
            try:
                pruned = svc.ledger.prune(now)
            except Exception as exc:  # noqa: BLE001 - housekeeping never stops the consumer
                error = f"{type(exc).__name__}: {exc}"
                log.warning("ledger prune failed; retried next interval", extra={"error": error})
                return {"pruned": None, "error": type(exc).__name__}
            if pruned:
                log.info("ledger pruned", extra={"pruned": pruned, "retention_s": svc.ledger.retention_s})
            return {"pruned": pruned}
        finally:
            self._lock.release()
