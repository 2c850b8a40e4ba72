"""Run one message body through its stage and turn the result, or the error it raised, into a decision.

Order of checks: poison → not yet due (a long delay split into hops) → the ledger admits the hop (stale:
``seq`` already handled; busy: a duplicate is running it now, so this copy is deferred) → the task already has
an outcome (not reported yet: report it; reported: drop) → the stage.

Where the queue and the ledger share one Redis (``Services.hop_commit``), a POLL runs those checks on the record
as it reads it (``Ledger.peek_hop``, no write) and asks the vendor before it takes the lease: a job still running
(or a status query to retry) is decided without one, and the hop's end sends the next poll only if it is the first
end of the hop (``Continue(leased=False)``, see :mod:`consumer.effects`). A job that ended, or a deadline that
passed, takes the lease first, and the stage goes on from the vendor's answer.

A stage may join the hop before it (``join``): a poll that saw the job finished goes on to COLLECT, and COLLECT to
AUDIT, in the same hop, under its lease, with no write in between. Rerunning the hop from its message redoes
those stages (the poll asks the vendor again, COLLECT keeps what is staged), so no checkpoint is lost; the hop's
end records what the joined stages decided. A stage joins only while at least :data:`JOIN_LEASE_SHARE` of the
hop's lease is left, so a long COLLECT hands AUDIT a fresh lease the usual way. On the same terms a ``Finish``
is marked ``report_joins``: its effects record the outcome keeping the hop, and REPORT runs in it too.

Errors are caught by their class in the tree of :mod:`relay_core.errors`: ``TaskFailed`` finishes the task
``failed`` with its reason, ``OurFault`` dead-letters, ``Transient`` (and any unexpected exception, a bug) runs
the stage again, bounded per stage. Queue and ledger errors are not caught: the message then stays in the queue
and comes back after its visibility timeout (bounded by the queue's max receive count).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

from consumer.decisions import Continue, Decision, Defer, Drop, Finish, ToDeadLetter
from consumer.delays import retry_delay, until_deadline
from consumer.services import Services
from consumer.steps import audit, collect, poll, report, submit
from consumer.steps.common import failed, timed_out
from jobqueue.errors import PoisonMessage, QueueError
from jobqueue.ledger.base import Hop, HopState, TaskRecord
from jobqueue.message import JobMessage, Stage, parse
from moderation.errors import AuditJobFailed
from relay_core import logs
from relay_core.errors import OurFault, TaskFailed, Transient
from vendors.base import VendorStatus

log = logs.get("consumer")

#: the stages' steps: ``run(message, services, record)``, ``record`` the task's record as stored with the hop's lease
#: (as fresh as a read; ``None`` when not known: a step then reads what it needs)
STEPS: dict[Stage, Callable[[JobMessage, Services, TaskRecord | None], Decision]] = {
    Stage.SUBMIT: submit.run,
    Stage.POLL: poll.run,
    Stage.COLLECT: collect.run,
    Stage.AUDIT: audit.run,
    Stage.REPORT: report.run,
}

#: most runs of one stage that end in a retry before the task gives up (see :func:`_exhausted`)
STAGE_MAX_ATTEMPTS = {Stage.SUBMIT: 60, Stage.POLL: 200, Stage.COLLECT: 6, Stage.AUDIT: 10}

#: the stages that may join the hop before them: what they do is redone when the hop is rerun from its message
JOINABLE = frozenset({Stage.COLLECT, Stage.AUDIT})
#: a stage joins its hop only while at least this share of the hop's lease (the visibility timeout) is left
JOIN_LEASE_SHARE = 0.5


def _never() -> bool:
    return False


def handle(body: str, svc: Services, *, join: Callable[[], bool] = _never) -> tuple[JobMessage | None, Decision]:
    """Decide what happens to one message body. Returns the message the decision is about (None if poison: the
    parsed one, or the last stage that joined its hop) and the decision."""
    try:
        msg = parse(body)
    except PoisonMessage as exc:
        log.error("poison message", extra={"reason": str(exc)})
        return None, ToDeadLetter(f"poison: {exc}")
    return handle_message(msg, svc, join=join)


def handle_message(
    msg: JobMessage, svc: Services, hop: Hop | None = None, *, join: Callable[[], bool] = _never
) -> tuple[JobMessage, Decision]:
    """Decide one parsed message; ``hop``: its hop was already begun (handed on in place, see
    :mod:`consumer.effects`), so the not-yet-due and admission checks are skipped. ``join()``: whether a stage due
    next may join this hop now (the runner's budget); see the module docstring. Returns the message of the last
    stage run (the hop's own ``seq``) and its decision, carrying what the stages before it left to the hop's end."""
    with logs.bind(task_id=msg.task_id, stage=msg.stage.value, seq=msg.seq, attempt=msg.attempt):
        admitted, decision = _handle(msg, svc, hop)
    vendor_done = None
    while (
        admitted is not None
        and isinstance(decision, Continue)
        and (joined := _joining(msg, decision, admitted, svc, join)) is not None
    ):
        vendor_done = decision.vendor_done or vendor_done
        msg = joined
        with logs.bind(task_id=msg.task_id, stage=msg.stage.value, seq=msg.seq, attempt=msg.attempt):
            log.debug("stage joins the hop")
            decision = _step(msg, svc, admitted)
    if vendor_done is not None and isinstance(decision, (Continue, Finish)) and decision.vendor_done is None:
        decision = replace(decision, vendor_done=vendor_done)
    if isinstance(decision, Finish) and admitted is not None and _lease_has_room(admitted, svc) and join():
        decision = replace(decision, report_joins=True)
    return msg, decision


def _joining(
    msg: JobMessage, decision: Continue, hop: Hop, svc: Services, join: Callable[[], bool]
) -> JobMessage | None:
    """The stage that joins ``msg``'s hop next (with the hop's ``seq``), or ``None``: the decision goes to the
    effects."""
    if decision.delay_s > 0 or decision.submission is not None:
        return None
    successor = decision.message
    if successor.stage not in JOINABLE or successor.seq != msg.seq + 1 or successor.not_before is not None:
        return None
    if not _lease_has_room(hop, svc) or not join():
        return None
    return successor.replace(seq=msg.seq)


def _lease_has_room(hop: Hop, svc: Services) -> bool:
    """Whether at least :data:`JOIN_LEASE_SHARE` of ``hop``'s lease is left for a stage to join it."""
    record = hop.record
    return record is not None and record.hop_until - svc.clock() >= JOIN_LEASE_SHARE * svc.settings.visibility_timeout_s


def _handle(msg: JobMessage, svc: Services, hop: Hop | None) -> tuple[Hop | None, Decision]:
    """The hop admitted for ``msg`` (``None``: not run) and the decision."""
    status, decided = None, None
    if hop is None:
        now = svc.clock()
        if msg.not_before is not None and now < msg.not_before - 0.5:
            return None, Continue(msg.next(attempt=msg.attempt, not_before=msg.not_before), msg.not_before - now)
        if msg.stage is Stage.POLL and svc.hop_commit is not None:
            peeked = svc.ledger.peek_hop(msg.task_id, msg.seq, now, msg.user_id)
            if peeked.state is not HopState.RUN:
                return None, _refused(msg, peeked)
            if peeked.record is not None and peeked.record.outcome is None:
                status, decided = _poll_unleased(msg, svc)
                if isinstance(decided, Continue) and not decided.leased:
                    return None, decided
        # a SUBMIT hop takes the submit claim with its lease: one write (the claim lives as long as the lease)
        token = uuid.uuid4().hex if msg.stage is Stage.SUBMIT else None
        lease_s = svc.settings.visibility_timeout_s
        hop = svc.ledger.begin_hop(
            msg.task_id, msg.seq, lease_s, now, msg.user_id, submit_token=token, deadline_at=msg.deadline_at
        )
    if hop.state is not HopState.RUN:
        return None, _refused(msg, hop)
    record = hop.record  # as stored with the lease: no second read
    if record is not None and record.outcome is not None and msg.stage is not Stage.REPORT:
        if record.reported_at is None:  # a run died between recording the outcome and sending REPORT
            log.warning("task has an unreported outcome; reporting it")
            return None, Finish(record.outcome)
        log.info("task already finished; message dropped")
        return None, Drop("finished")
    return hop, decided if decided is not None else _step(msg, svc, hop, status)


def _poll_unleased(msg: JobMessage, svc: Services) -> tuple[VendorStatus | None, Decision | None]:
    """A POLL's status query before its hop takes the lease (see :mod:`consumer.steps.poll`): the job still running,
    or a failed query to retry, is decided here without the lease (``Continue(leased=False)``). Otherwise the
    vendor's answer for the leased hop to go on from, or the decision an error came to, for it to carry out."""
    try:
        status = poll.ask(msg, svc)  # looks the pipeline up first: a renamed one is our fault, as in _step
    except QueueError:
        raise
    except Exception as exc:  # noqa: BLE001 - decided by class in _failure, as a step's errors are
        decided = _failure(msg, svc, exc)
        if isinstance(decided, Continue) and decided.message.stage is Stage.POLL:
            return None, replace(decided, leased=False)
        return None, decided
    later = poll.running(msg, svc, status)
    return status, replace(later, leased=False) if later is not None else None


def _refused(msg: JobMessage, hop: Hop) -> Decision:
    """The decision for a hop the ledger does not admit (any state but ``RUN``)."""
    if hop.state is HopState.FOREIGN:
        reason = (
            f"task {msg.task_id} belongs to another user; this upload by user {msg.user_id} was refused (never "
            "merged into it): the uploader must use a fresh task id, or an operator purges this letter"
        )
        log.error("message of another user's task refused", extra={"user_id": msg.user_id})
        return ToDeadLetter(reason, park=False)
    if hop.state is HopState.STALE:
        log.info("stale message dropped")
        return Drop("stale")
    # BUSY: a duplicate of a hop another runner is doing right now
    log.info("hop busy elsewhere; deferred", extra={"retry_after_s": round(hop.retry_after_s, 1)})
    return Defer(msg, hop.retry_after_s + 1)


def _step(msg: JobMessage, svc: Services, hop: Hop, status: VendorStatus | None = None) -> Decision:
    """Run ``msg``'s stage in the admitted ``hop`` (a POLL that asked already goes on from ``status``); errors
    become decisions by their class."""
    record = hop.record
    try:
        if msg.stage is not Stage.REPORT:  # a renamed pipeline is our fault, whatever the task's deadline says
            svc.pipelines.get(msg.pipeline)
        if msg.stage is Stage.SUBMIT:
            return submit.run(msg, svc, record, claim=hop.claim)
        if msg.stage is Stage.POLL:
            return poll.run(msg, svc, record, status)
        return STEPS[msg.stage](msg, svc, record)
    except QueueError:
        raise
    except Exception as exc:  # noqa: BLE001 - decided by class in _failure
        return _failure(msg, svc, exc)


def _failure(msg: JobMessage, svc: Services, exc: Exception) -> Decision:
    """What an error a stage raised comes to, by its class in :mod:`relay_core.errors`."""
    if isinstance(exc, TaskFailed):
        log.warning("task failed", extra={"error_reason": exc.reason.value, "detail": exc.detail})
        return Finish(failed(msg, exc.reason, exc.detail))
    if isinstance(exc, OurFault):
        log.error("dead-lettering task", extra={"reason": str(exc), "error": type(exc).__name__})
        return ToDeadLetter(f"{msg.stage.value}: {exc}")
    if not isinstance(exc, Transient):  # a bug or an untranslated library error: bounded retry, then DLQ
        log.error("step raised", exc_info=exc)
    return _retry(msg, svc, exc)


def _retry(msg: JobMessage, svc: Services, exc: Exception) -> Decision:
    """Run the same stage again later, or give up when its attempts (or the task's deadline) are spent."""
    now = svc.clock()
    reason = f"{type(exc).__name__}: {exc}"
    if msg.stage in (Stage.SUBMIT, Stage.POLL) and now >= msg.deadline_at:
        return timed_out(msg, svc, cancel=msg.stage is Stage.POLL)
    limit = svc.settings.report_max_attempts if msg.stage is Stage.REPORT else STAGE_MAX_ATTEMPTS[msg.stage]
    if msg.attempt + 1 >= limit:
        return _exhausted(msg, exc, reason, limit)
    delay = exc.delay_s if isinstance(exc, Transient) and exc.delay_s is not None else None
    if delay is None:
        delay = retry_delay(msg.attempt, svc.rng)
    if msg.stage in (Stage.SUBMIT, Stage.POLL):
        delay = until_deadline(delay, now, msg.deadline_at)
    log.warning("retrying stage", extra={"reason": reason, "delay_s": round(delay, 2)})
    if isinstance(exc, AuditJobFailed):  # the moderation job is dead: the retry starts new ones
        return Continue(msg.next(attempt=msg.attempt + 1, audit_job_id=None), delay)
    return Continue(msg.next(attempt=msg.attempt + 1), delay)


def _exhausted(msg: JobMessage, exc: Exception, reason: str, limit: int) -> Decision:
    log.error("stage attempts exhausted", extra={"reason": reason, "attempts": limit})
    if isinstance(exc, Transient) and exc.gives_up_as is not None:
        return Finish(failed(msg, exc.gives_up_as, reason))
    return ToDeadLetter(f"{msg.stage.value}: gave up after {limit} attempts: {reason}")
