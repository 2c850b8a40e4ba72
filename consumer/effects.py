"""The one place that applies a step's decision to the queue and the ledger, in a crash-safe order.

Every order below keeps one rule: until the current message is deleted, a crash (SIGKILL, an SCF time or memory
limit) leaves that message in the queue, and its redelivery finds enough in the ledger to drive the task on.

``Continue``      (record the vendor job a submit created, or the one a poll saw finished →) send the successor
                  → record the hop (``seq``) as handled → delete the message. Where the queue and the ledger share
                  one Redis (``Services.hop_commit``) these are one atomic script instead; only there may a hop
                  run without its lease (``leased=False``), and its end sends the successor only together with
                  the write that raises the seq.
``Finish``        (record the vendor job a poll saw finished, when COLLECT and AUDIT joined its hop →) record the
                  outcome (the first recorded one wins) with the REPORT hop it owes → send REPORT →
                  record the hop → delete. A crash between the outcome and the REPORT send is healed by dispatch:
                  a redelivered hop of a task whose outcome is recorded but not reported decides ``Finish``
                  again; a REPORT message lost anyway (a queue that dropped it) is re-sent by the housekeeping
                  sweep of the ledger's pending-report index.
``Finish`` with ``report_joins`` (and ``in_place``)
                  record the outcome keeping the hop's lease (``Ledger.finish_in_hop``, one write), and return the
                  REPORT with the hop's own ``seq`` for the same runner to run next: the received message stays
                  as it is, so a crash redelivers it and dispatch's healing above reports the outcome. The REPORT's
                  own decision then ends the hop.
``Reported``      record that the backend acknowledged → record the hop → delete. A crash before the record
                  resends the same report (same ``X-Relay-Delivery``), which the backend drops.
``Defer``         send the same message again with a delay → delete (the hop is not recorded).
``Drop``          record the hop unless it is stale → delete.
``ToDeadLetter``  move the message to the dead-letter queue (atomic, same id and body) → release the hop's
                  lease so that a redrive runs at once, and park the task (the report sweep leaves it to an
                  operator).

With a ``HopCommit`` (queue and ledger on one Redis), ``Reported`` and ``Drop`` are one atomic script each, and a
successor due at once (a ``Continue`` without delay, or the REPORT of a ``Finish``) may be handed on in place when
the caller allows it: one script records the outcome, records the hop, takes the successor's lease and gives the
received message the successor's body; :func:`apply` then returns the successor for the same runner to run next.
A crash from then on leaves the successor in the queue, where its lease makes a redelivery wait as for any
runner that died.
"""

from __future__ import annotations

from collections.abc import Callable

from consumer.decisions import Continue, Decision, Defer, Drop, Finish, Reported, ToDeadLetter
from consumer.services import Services
from jobqueue.hop_commit import HopCommit
from jobqueue.ledger.base import Hop, HopState, Submission
from jobqueue.message import JobMessage, Stage
from jobqueue.queue.base import Received
from relay_core import logs
from relay_core.domain import Outcome

log = logs.get("consumer")

#: observers of the boundaries between effects ("decided", "successor_sent", "outcome_recorded", "hop_recorded",
#: "dead_lettered"); the chaos tool installs one that kills the process at a boundary. Empty in production.
boundary_observers: list[Callable[[str], None]] = []


def _boundary(name: str) -> None:
    for observer in boundary_observers:
        observer(name)


def apply(
    svc: Services, received: Received, msg: JobMessage | None, decision: Decision, *, in_place: bool = False
) -> tuple[JobMessage, Hop] | None:
    """Carry out ``decision`` for the ``received`` message (``msg`` is None for a poison body). ``in_place``: a
    successor due at once may be handed on in place; then it is returned, with its hop begun, for this runner to
    run next (``received`` now carries it). Otherwise returns ``None``: the message is done with."""
    _boundary("decided")
    if isinstance(decision, ToDeadLetter):
        svc.queue.dead_letter(received, decision.reason)
        log.error("dead-lettered", extra={"reason": decision.reason, "message_id": received.message_id})
        _boundary("dead_lettered")
        if msg is not None and decision.park:
            svc.ledger.release_hop(msg.task_id, msg.seq, svc.clock(), parked=True)
        return None
    if msg is None:
        raise ValueError("only a dead letter can lack a parsed message")
    if in_place and isinstance(decision, Finish) and decision.report_joins:
        reporting = _report_in_hop(svc, msg, decision)
        if reporting is not None:
            return reporting
    commit = svc.hop_commit
    if commit is not None:
        handed = _hand_on(svc, commit, received, msg, decision) if in_place else None
        if handed is not None or _commit_atomically(svc, commit, received, msg, decision):
            return handed
    forward(svc, msg, decision)
    _boundary("hop_recorded")
    svc.queue.delete(received.receipt)
    return None


def _hand_on(
    svc: Services, commit: HopCommit, received: Received, msg: JobMessage, decision: Decision
) -> tuple[JobMessage, Hop] | None:
    """Hand a successor due at once on in place (see the module docstring); ``None`` when there is none or its
    hop cannot be admitted now (nothing was written then)."""
    if isinstance(decision, Continue):
        successor, delay = _successor(svc, decision.message, decision.delay_s)
        if delay > 0 or decision.submission is not None or not decision.leased:
            return None
        outcome = None
    elif isinstance(decision, Finish):
        successor, outcome = msg.next(Stage.REPORT, attempt=0), decision.outcome
    else:
        return None
    if successor.seq != msg.seq + 1 or successor.task_id != msg.task_id:
        return None
    body = successor.dumps()
    hop = commit.hand_on(
        received,
        msg.task_id,
        msg.seq,
        body,
        svc.settings.visibility_timeout_s,
        svc.clock(),
        user_id=msg.user_id,
        outcome=outcome,
        report_message=body if outcome is not None else None,
        vendor_done=decision.vendor_done,
    )
    if hop.state is not HopState.RUN:
        return None
    if outcome is not None:
        _boundary("outcome_recorded")
        _log_outcome(hop.record.outcome if hop.record is not None else None, outcome)
    _boundary("successor_sent")
    _boundary("hop_recorded")
    return successor, hop


def _report_in_hop(svc: Services, msg: JobMessage, decision: Finish) -> tuple[JobMessage, Hop] | None:
    """Record the outcome keeping the hop, and return its REPORT (with the hop's ``seq``) for this runner to run
    next; ``None`` when the hop's lease is no longer live (nothing was written then)."""
    report = msg.next(Stage.REPORT, attempt=0)
    hop = svc.ledger.finish_in_hop(
        msg.task_id,
        msg.seq,
        decision.outcome,
        svc.clock(),
        user_id=msg.user_id,
        report_message=report.dumps(),
        vendor_done=decision.vendor_done,
    )
    if hop.state is not HopState.RUN:
        return None
    _boundary("outcome_recorded")
    _log_outcome(hop.record.outcome if hop.record is not None else None, decision.outcome)
    return report.replace(seq=msg.seq), hop


def _commit_atomically(
    svc: Services, commit: HopCommit, received: Received, msg: JobMessage, decision: Decision
) -> bool:
    """End the hop in one script where the decision has one (``Continue``, ``Reported``, ``Drop``)."""
    now = svc.clock()
    if isinstance(decision, Continue):
        message, delay = _successor(svc, decision.message, decision.delay_s)
        done = commit.continue_hop(
            received,
            msg.task_id,
            msg.seq,
            message.dumps(),
            delay,
            now,
            submission=decision.submission,
            vendor_done=decision.vendor_done,
            unleased=not decision.leased,
        )
        if decision.submission is not None and not done:
            _claim_lost(decision.submission)
        _boundary("successor_sent")
    elif isinstance(decision, Reported) or (isinstance(decision, Drop) and decision.note != "stale"):
        commit.end_hop(received, msg.task_id, msg.seq, now, reported=isinstance(decision, Reported))
    else:
        return False
    _boundary("hop_recorded")
    return True


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
        if not decision.leased:  # its successor may go only with the write that raises the seq: one atomic step
            raise ValueError("a hop run without its lease ends only through a HopCommit")
        if (submission := decision.submission) is not None and not svc.ledger.record_submission(
            msg.task_id, submission.token, submission.vendor_task_id, svc.clock(), poll_message=submission.poll_message
        ):
            _claim_lost(submission)
        if decision.vendor_done is not None:
            svc.ledger.mark_vendor_done(msg.task_id, decision.vendor_done, svc.clock())
        send_successor(svc, decision.message, decision.delay_s)
        _boundary("successor_sent")
    elif isinstance(decision, Finish):
        if decision.vendor_done is not None:
            svc.ledger.mark_vendor_done(msg.task_id, decision.vendor_done, svc.clock())
        report = msg.next(Stage.REPORT, attempt=0)
        stored = svc.ledger.record_outcome(
            msg.task_id, decision.outcome, svc.clock(), user_id=msg.user_id, report_message=report.dumps()
        )
        _boundary("outcome_recorded")
        _log_outcome(stored, decision.outcome)
        send_successor(svc, report, 0.0)
        _boundary("successor_sent")
    elif isinstance(decision, Reported):
        svc.ledger.mark_reported(msg.task_id, svc.clock())
    svc.ledger.advance(msg.task_id, msg.seq, svc.clock())


def _claim_lost(submission: Submission) -> None:
    log.error("submit claim was lost while submitting", extra={"vendor_task_id": submission.vendor_task_id})


def _log_outcome(stored: Outcome | None, decided: Outcome) -> None:
    if stored is not None and stored != decided:
        log.warning("another outcome was recorded first; reporting that one", extra={"recorded": stored.status})
    if stored is not None:
        extra = {"status": stored.status.value, "error_reason": stored.error_reason, "results": len(stored.result_keys)}
        log.info("task outcome recorded", extra=extra)


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
