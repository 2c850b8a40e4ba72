"""The task ledger: the workers' own idempotency store, one record per task.

It makes at-least-once delivery safe (DESIGN.md invariants 1-3). Contract of every backend
(``tests/contract/test_ledger_contract.py`` checks each one):

* **Submit claim.** ``claim_submit(task, token, lease_s, deadline_at)`` returns:
  ``ACQUIRED`` when no claim exists or the previous holder's lease expired while it was only preparing
  (uploading the input: the new holder takes over); ``HELD`` (with ``retry_after_s``) while another token's
  lease is live; ``SUBMITTED`` (with ``vendor_task_id``) once a submission is recorded; ``AMBIGUOUS`` once a
  submit was marked ambiguous, or when a holder's lease expired after ``mark_sending`` (it died while the
  request may have reached the vendor): never resubmit until an operator calls ``reset_submit``.
  ``mark_sending`` (just before the vendor call), ``record_submission`` and ``mark_ambiguous`` only succeed
  for the current token; ``release_submit`` gives up a claim (the vendor definitely created nothing) so a
  retry can claim again.
* **Hop order.** ``seq_handled(task)`` is the highest ``seq`` whose successor was sent;
  ``advance(task, seq)`` raises it to ``seq`` (compare-and-set, never lowers it) and returns whether it rose.
  ``begin_hop(task, seq, lease_s)`` admits one runner per hop: ``STALE`` when ``seq`` is at most the handled
  seq or below a hop already begun; ``BUSY`` (with ``retry_after_s``) while another runner's lease on the same
  ``seq`` is live (a concurrent duplicate); else ``RUN``, taking the lease. A runner that died leaves a lease
  that expires, so the redelivered message runs again. ``release_hop(task, seq)`` drops the lease of a hop
  that ended without a successor (dead-lettered), so a redrive runs at once.
* **Terminal outcome.** ``record_outcome(task, outcome)`` stores the first outcome and returns the stored
  one: later calls, whatever they pass, get the first back. That is how a task gets exactly one outcome.
  ``mark_reported(task)`` records that the backend acknowledged the report.
* **Stuck tasks.** ``open_tasks(deadline_before)`` lists tasks without an outcome whose deadline is before the
  given time, oldest deadline first, without scanning every record.
* Records expire: ``retention_s`` after creation (Redis TTL) or by ``prune`` (SQLite).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

from relay_core.domain import Outcome


class ClaimState(str, enum.Enum):
    ACQUIRED = "acquired"
    HELD = "held"
    SUBMITTED = "submitted"
    AMBIGUOUS = "ambiguous"


class HopState(str, enum.Enum):
    RUN = "run"
    STALE = "stale"
    BUSY = "busy"


@dataclass(frozen=True)
class Hop:
    state: HopState
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    vendor_task_id: str | None = None
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    seq: int = -1
    submit_state: str = ""  # "" | "leased" | "sending" | "submitted" | "ambiguous"
    lease_until: float = 0.0
    vendor_task_id: str | None = None
    deadline_at: float = 0.0
    outcome: Outcome | None = None
    reported_at: float | None = None
    updated_at: float = 0.0


class Ledger(abc.ABC):
    """Base of every ledger backend; times are unix seconds, passed in so tests control the clock."""

    def __init__(self, *, retention_s: int = 30 * 86400) -> None:
        self.retention_s = retention_s

    @abc.abstractmethod
    def claim_submit(self, task_id: str, token: str, lease_s: float, deadline_at: float, now: float) -> Claim: ...

    @abc.abstractmethod
    def mark_sending(self, task_id: str, token: str, now: float) -> bool: ...

    @abc.abstractmethod
    def record_submission(self, task_id: str, token: str, vendor_task_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    def mark_ambiguous(self, task_id: str, token: str, now: float) -> bool: ...

    @abc.abstractmethod
    def release_submit(self, task_id: str, token: str, now: float) -> bool: ...

    @abc.abstractmethod
    def reset_submit(self, task_id: str, now: float) -> bool:
        """Operator action: forget an ambiguous or stale claim so the task may be submitted again."""

    @abc.abstractmethod
    def seq_handled(self, task_id: str) -> int:
        """Highest seq whose successor was sent, ``-1`` for an unknown task."""

    @abc.abstractmethod
    def advance(self, task_id: str, seq: int, now: float) -> bool: ...

    @abc.abstractmethod
    def begin_hop(self, task_id: str, seq: int, lease_s: float, now: float) -> Hop: ...

    @abc.abstractmethod
    def release_hop(self, task_id: str, seq: int, now: float) -> None: ...

    @abc.abstractmethod
    def record_outcome(self, task_id: str, outcome: Outcome, now: float) -> Outcome: ...

    @abc.abstractmethod
    def mark_reported(self, task_id: str, now: float) -> None: ...

    @abc.abstractmethod
    def get(self, task_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    def open_tasks(self, deadline_before: float, limit: int = 100) -> list[TaskRecord]: ...

    def prune(self, now: float) -> int:
        """Delete records older than ``retention_s``; returns how many. Backends with TTLs need not."""
        return 0

    def close(self) -> None:
        """Release connections; the default has none."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
