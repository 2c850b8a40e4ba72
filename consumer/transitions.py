"""What a step decides: hand on to a successor, dead-letter, or acknowledge. The drain loop applies it.

Applying is the only place that touches the queue: the successor is sent first, then the ledger records the
hop, then the current message is deleted (DESIGN.md invariant 4: deleted only after its successor is sent).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqueue.ledger.base import Outcome, Status
from jobqueue.message import JobMessage, Stage
from scf_relay import logs
from scf_relay.ids import output_prefix, staging_prefix

log = logs.get("consumer")


@dataclass(frozen=True)
class Send:
    message: JobMessage
    delay_s: float = 0.0


@dataclass(frozen=True)
class Defer:
    """Run this same message later (another runner holds its hop): re-sent unchanged, the hop not recorded."""

    message: JobMessage
    delay_s: float


@dataclass(frozen=True)
class DeadLetter:
    reason: str


@dataclass(frozen=True)
class Ack:
    note: str


Next = Send | Defer | DeadLetter | Ack


def finish(msg: JobMessage, outcome: Outcome, svc) -> Send:  # svc: consumer.services.Services
    """Record the task's outcome (first writer wins) and hand on to the report.

    If another run recorded a different outcome first, that one stands; a failed task never keeps files under
    ``output/`` (invariant 5), whoever wrote them.
    """
    stored = svc.ledger.record_outcome(msg.task_id, outcome, svc.clock())
    if stored != outcome:
        log.warning("another outcome was recorded first; reporting that one", extra={"recorded": stored.status.value})
    if stored.status is Status.FAILED:
        removed = svc.store.delete_prefix(svc.output_bucket, output_prefix(msg.user_id, msg.task_id))
        if removed:
            log.warning("removed outputs of a failed task", extra={"removed": removed})
    svc.store.delete_prefix(svc.output_bucket, staging_prefix(msg.user_id, msg.task_id))
    log.info(
        "task outcome recorded",
        extra={"status": stored.status.value, "error_reason": stored.error_reason, "results": len(stored.result_keys)},
    )
    return Send(msg.next(Stage.REPORT, attempt=0))
