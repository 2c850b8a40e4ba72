"""The one place that applies a step's decision to the queue and the ledger, in a crash-safe order.

Every order below keeps one rule: until the current message is deleted, a crash (SIGKILL, an SCF time or memory
limit) leaves that message in the queue, and its redelivery finds enough in the ledger to drive the task on.

``Continue``      send the successor → record the hop (``seq``) as handled → delete the message. Where the queue and
                  the ledger share one Redis (``Services.hop_commit``) the three are one atomic script instead.
``Finish``        record the outcome (the first recorded one wins) with the REPORT hop it owes → send REPORT →
                  record the hop → delete. A crash between the outcome and the REPORT send is healed by dispatch:
                  a redelivered hop of a task whose outcome is recorded but not reported decides ``Finish``
                  again; a REPORT message lost anyway (a queue that dropped it) is re-sent by the housekeeping
                  sweep of the ledger's pending-report index.
``Reported``      record that the backend acknowledged → record the hop → delete. A crash before the record
                  resends the same report (same ``X-Relay-Delivery``), which the backend drops.
``Defer``         send the same message again with a delay → delete (the hop is not recorded).
``Drop``          record the hop unless it is stale → delete.
``ToDeadLetter``  move the message to the dead-letter queue (atomic, same id and body) → release the hop's
                  lease so that a redrive runs at once, and park the task (the report sweep leaves it to an
                  operator).
"""

from __future__ import annotations

from collections.abc import Callable

from consumer.decisions import Continue, Decision, Defer, Drop, Finish, Reported, ToDeadLetter
from consumer.services import Services
from jobqueue.message import JobMessage, Stage
from jobqueue.queue.base import Received
from relay_core import logs

log = logs.get("consumer")

#: observers of the boundaries between effects ("decided", "successor_sent", "outcome_recorded", "hop_recorded",
#: "dead_lettered"); the chaos tool installs one that kills the process at a boundary. Empty in production.
boundary_observers: list[Callable[[str], None]] = []


def _boundary(name: str) -> None:
    for observer in boundary_observers:
        observer(name)


def apply(svc: Services, received: Received, msg: JobMessage | None, decision: Decision) -> None:
    """Carry out ``decision`` for the ``received`` message (``msg`` is None for a poison body)."""
    _boundary("decided")
    if isinstance(decision, ToDeadLetter):
        svc.queue.dead_letter(received, decision.reason)
        log.error("dead-lettered", extra={"reason": decision.reason, "message_id": received.message_id})
        _boundary("dead_lettered")
        if msg is not None and decision.park:
            svc.ledger.release_hop(msg.task_id, msg.seq, svc.clock(), parked=True)
        return
    if msg is None:
        raise ValueError("only a dead letter can lack a parsed message")
    if isinstance(decision, Continue) and svc.hop_commit is not None:
        message, delay = _successor(svc, decision.message, decision.delay_s)
        svc.hop_commit.continue_hop(received, msg.task_id, msg.seq, message.dumps(), delay, svc.clock())
        _boundary("successor_sent")
        _boundary("hop_recorded")
        return
    forward(svc, msg, decision)
    _boundary("hop_recorded")
    svc.queue.delete(received.receipt)


def forward(svc: Services, msg: JobMessage, decision: Decision) -> None:
    """Everything of :func:`apply` before the delete: what comes next is sent, then the hop is recorded."""
    if isinstance(decision, ToDeadLetter):
        raise ValueError("a dead letter is not forwarded")
    if isinstance(decision, Defer):
        svc.queue.send(decision.message.dumps(), min(decision.delay_s, svc.queue.max_delay_s))
        return
    if isinstance(decision, Drop) and decision.note == "stale":
        return
    if isinstance(decision, Continue):
        send_successor(svc, decision.message, decision.delay_s)
        _boundary("successor_sent")
    elif isinstance(decision, Finish):
        report = msg.next(Stage.REPORT, attempt=0)
        stored = svc.ledger.record_outcome(
            msg.task_id, decision.outcome, svc.clock(), user_id=msg.user_id, report_message=report.dumps()
        )
        _boundary("outcome_recorded")
        if stored != decision.outcome:
            log.warning("another outcome was recorded first; reporting that one", extra={"recorded": stored.status})
        log.info(
            "task outcome recorded",
            extra={
                "status": stored.status.value,
                "error_reason": stored.error_reason,
                "results": len(stored.result_keys),
            },
        )
        send_successor(svc, report, 0.0)
        _boundary("successor_sent")
    elif isinstance(decision, Reported):
        svc.ledger.mark_reported(msg.task_id, svc.clock())
    svc.ledger.advance(msg.task_id, msg.seq, svc.clock())


def send_successor(svc: Services, message: JobMessage, delay_s: float) -> None:
    """Send ``message``; a delay longer than the queue allows becomes hops (``not_before``)."""
    message, delay = _successor(svc, message, delay_s)
    svc.queue.send(message.dumps(), delay)


def _successor(svc: Services, message: JobMessage, delay_s: float) -> tuple[JobMessage, float]:
    """``message`` and its delay as sent: a delay longer than the queue allows becomes hops (``not_before``)."""
    delay = max(0.0, delay_s)
    if delay > svc.queue.max_delay_s:
        message = message.replace(not_before=svc.clock() + delay)
        delay = svc.queue.max_delay_s
    return message, delay
