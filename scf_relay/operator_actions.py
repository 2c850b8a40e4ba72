"""Operator actions on dead letters and tasks, used by ``scf-relay dlq`` and ``scf-relay tasks``.

They work on the queue's operator plane (:class:`~jobqueue.queue.base.DeadLetterStore`, from
``jobqueue.open_queue_admin``); ``fail`` also sends on the data plane (``jobqueue.open_queue``).

``fail`` gives up on a task explicitly: it records ``failed`` in the ledger (first outcome wins, so a task that
already has one keeps it) and enqueues a REPORT hop, so the backend is told through the normal, retried
report path and refunds the user.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from jobqueue.errors import PoisonMessage
from jobqueue.ledger.base import Ledger
from jobqueue.message import Stage, parse, task_of
from jobqueue.queue.base import DeadLetter, DeadLetterStore, Queue
from relay_core.domain import ErrorReason, Outcome, Status


@dataclass(frozen=True)
class DeadView:
    message_id: str
    task_id: str | None
    stage: str | None
    reason: str
    dead_at: float
    receive_count: int

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadView:
        try:
            stage = json.loads(letter.body).get("stage")
        except (ValueError, AttributeError):
            stage = None
        return cls(letter.message_id, task_of(letter.body), stage, letter.reason, letter.dead_at, letter.receive_count)


def list_dead(dead: DeadLetterStore, limit: int = 100, task_id: str | None = None) -> list[DeadView]:
    """Up to ``limit`` dead letters (only ``task_id``'s when given), oldest first."""
    views = [DeadView.of(d) for d in dead.dead_letters(limit=limit if task_id is None else 100_000)]
    return [v for v in views if task_id is None or v.task_id == task_id][:limit]


def redrive(
    dead: DeadLetterStore,
    ledger: Ledger,
    message_ids: list[str] | None,
    *,
    dry_run: bool = False,
    rate_per_s: float = 0.0,
    resubmit: bool = False,
) -> list[str]:
    """Send dead letters back (all when ``message_ids`` is None); returns the ids moved.

    ``resubmit`` also clears each task's ambiguous submit claim: only after checking the vendor console, since
    it allows a second vendor job. ``rate_per_s`` spaces the moves out. Without either, the queue moves them in
    one pass (on CMQ every look at the dead-letter queue hides what it sees, so fewer looks is better).
    """
    if dry_run:
        return [d.message_id for d in dead.dead_letters(limit=100_000)] if message_ids is None else message_ids
    if not resubmit and rate_per_s <= 0:
        return dead.redrive(message_ids)
    letters = {d.message_id: d for d in dead.dead_letters(limit=100_000)}
    targets = list(letters) if message_ids is None else [i for i in message_ids if i in letters]
    moved: list[str] = []
    for message_id in targets:
        task_id = task_of(letters[message_id].body)
        if resubmit and task_id:
            ledger.reset_submit(task_id, time.time())
        moved.extend(dead.redrive([message_id]))
        if rate_per_s > 0:
            time.sleep(1.0 / rate_per_s)
    return moved


def fail(
    dead: DeadLetterStore,
    queue: Queue,
    ledger: Ledger,
    message_id: str,
    reason: ErrorReason = ErrorReason.GIVEN_UP,
) -> dict:
    """Give up on the task of one dead letter: record ``failed`` and enqueue its report on ``queue``; drop the
    letter from ``dead``. Raises LookupError when there is no such dead letter."""
    letter = dead.dead_letter_by_id(message_id)
    if letter is None:
        raise LookupError(f"no dead letter {message_id}")
    try:
        msg = parse(letter.body)
    except PoisonMessage:
        dead.remove_dead(message_id)
        return {"message_id": message_id, "task_id": None, "action": "removed poison message (no task to report)"}
    outcome = Outcome(Status.FAILED, error_reason=reason.value, vendor_task_id=msg.vendor_task_id, detail="operator")
    stored = ledger.record_outcome(msg.task_id, outcome, time.time())
    queue.send(msg.next(Stage.REPORT, attempt=0).dumps())
    dead.remove_dead(message_id)
    return {
        "message_id": message_id,
        "task_id": msg.task_id,
        "action": "report enqueued",
        "status": stored.status.value,
        "error_reason": stored.error_reason,
    }
