"""Run one received message through its stage and decide what happens next.

Order of checks: poison -> not yet due (a long delay split into hops) -> the ledger admits the hop (stale:
``seq`` already handled; busy: a duplicate is running it now, so this copy is deferred) -> already finished ->
the stage. Exceptions are translated here into the three endings of
:mod:`consumer.errors`: retry (bounded per stage), report ``failed``, or dead-letter. Errors of the queue or
ledger themselves are not caught: the message then stays in the queue and comes back after its visibility
timeout (bounded by the queue's max receive count).
"""

from __future__ import annotations

from collections.abc import Callable

from consumer.backoff import retry_delay, until_deadline
from consumer.errors import DeadLetterStep, ErrorReason, RetryStep, TaskFailure
from consumer.fetch import FetchFailed, FetchRejected
from consumer.steps import audit, collect, poll, report, submit
from consumer.steps.common import failed, timed_out
from consumer.transitions import Ack, DeadLetter, Defer, Next, Send, finish
from jobqueue.errors import PoisonMessage
from jobqueue.ledger.base import HopState
from jobqueue.message import JobMessage, Stage, parse
from objectstore.errors import StoreError
from scf_relay import logs
from scf_relay.settings import ConfigError
from vendors.errors import InputRejected, TaskFailed, VendorError

log = logs.get("consumer")

STEPS: dict[Stage, Callable[[JobMessage, object], Next]] = {
    Stage.SUBMIT: submit.run,
    Stage.POLL: poll.run,
    Stage.COLLECT: collect.run,
    Stage.AUDIT: audit.run,
    Stage.REPORT: report.run,
}

#: most runs of one stage that end in a retry before the task gives up (see :func:`_exhausted`)
STAGE_MAX_ATTEMPTS = {Stage.SUBMIT: 60, Stage.POLL: 200, Stage.COLLECT: 6, Stage.AUDIT: 10}


def handle(body: str, svc) -> tuple[JobMessage | None, Next]:
    """Decide the next move for one message body. Returns the parsed message (None if poison) and the move."""
    try:
        msg = parse(body)
    except PoisonMessage as exc:
        log.error("poison message", extra={"reason": str(exc)})
        return None, DeadLetter(f"poison: {exc}")
    with logs.bind(task_id=msg.task_id, stage=msg.stage.value, seq=msg.seq, attempt=msg.attempt):
        return msg, _handle(msg, svc)


def _handle(msg: JobMessage, svc) -> Next:
    now = svc.clock()
    if msg.not_before is not None and now < msg.not_before - 0.5:
        return Send(msg.next(attempt=msg.attempt, not_before=msg.not_before), msg.not_before - now)
    hop = svc.ledger.begin_hop(msg.task_id, msg.seq, svc.settings.visibility_timeout_s, now)
    if hop.state is HopState.STALE:
        log.info("stale message dropped")
        return Ack("stale")
    if hop.state is HopState.BUSY:  # a duplicate of a hop another runner is doing right now
        log.info("hop busy elsewhere; deferred", extra={"retry_after_s": round(hop.retry_after_s, 1)})
        return Defer(msg, hop.retry_after_s + 1)
    record = svc.ledger.get(msg.task_id)
    if record is not None and record.outcome is not None and msg.stage is not Stage.REPORT:
        log.info("task already finished; message dropped")
        return Ack("finished")
    try:
        return STEPS[msg.stage](msg, svc)
    except TaskFailure as exc:
        log.warning("task failed", extra={"error_reason": exc.reason.value, "detail": exc.detail})
        return finish(msg, failed(msg, exc.reason, exc.detail), svc)
    except (DeadLetterStep, ConfigError) as exc:
        log.error("dead-lettering task", extra={"reason": str(exc)})
        return DeadLetter(f"{msg.stage.value}: {exc}")
    except VendorError as exc:
        return _vendor_error(msg, svc, exc)
    except FetchRejected as exc:
        log.warning("result rejected", extra={"detail": str(exc)})
        return finish(msg, failed(msg, ErrorReason.FAILED, str(exc)), svc)
    except (RetryStep, FetchFailed) as exc:
        return _retry(msg, svc, exc)
    except StoreError as exc:
        if not exc.retryable:
            log.error("store refused", extra={"reason": str(exc)})
            return DeadLetter(f"{msg.stage.value}: store: {exc}")
        return _retry(msg, svc, exc)
    except Exception as exc:  # noqa: BLE001 - auditor errors and unexpected faults: bounded retry, then DLQ
        if getattr(exc, "retryable", True) is False:
            log.error("non-retryable error", extra={"reason": str(exc)})
            return DeadLetter(f"{msg.stage.value}: {type(exc).__name__}: {exc}")
        log.exception("step raised")
        return _retry(msg, svc, exc)


def _vendor_error(msg: JobMessage, svc, exc: VendorError) -> Next:
    if exc.ours:
        log.error("vendor rejected our configuration", extra={"code": exc.code, "reason": str(exc)})
        return DeadLetter(
            f"{msg.stage.value}: vendor rejected our configuration (code {exc.code}): {exc}; fix and redrive"
        )
    if isinstance(exc, InputRejected):
        return finish(msg, failed(msg, ErrorReason.INVALID_INPUT, str(exc)), svc)
    if isinstance(exc, TaskFailed):
        return finish(msg, failed(msg, ErrorReason.FAILED, str(exc)), svc)
    if exc.retryable:
        return _retry(msg, svc, exc)
    return DeadLetter(f"{msg.stage.value}: vendor error {type(exc).__name__}: {exc}")


def _retry(msg: JobMessage, svc, exc: Exception) -> Next:
    """Run the same stage again later, or give up when its attempts (or the task's deadline) are spent."""
    now = svc.clock()
    reason = f"{type(exc).__name__}: {exc}"
    if msg.stage in (Stage.SUBMIT, Stage.POLL) and now >= msg.deadline_at:
        return timed_out(msg, svc, cancel=msg.stage is Stage.POLL)
    limit = svc.settings.report_max_attempts if msg.stage is Stage.REPORT else STAGE_MAX_ATTEMPTS[msg.stage]
    if msg.attempt + 1 >= limit:
        return _exhausted(msg, svc, exc, reason, limit)
    delay = getattr(exc, "delay_s", None)
    if delay is None:
        delay = retry_delay(msg.attempt, svc.rng)
    if msg.stage in (Stage.SUBMIT, Stage.POLL):
        delay = until_deadline(delay, now, msg.deadline_at)
    log.warning("retrying stage", extra={"reason": reason, "delay_s": round(delay, 2)})
    changes = {"audit_job_id": None} if getattr(exc, "restart_audit", False) else {}
    return Send(msg.next(attempt=msg.attempt + 1, **changes), delay)


def _exhausted(msg: JobMessage, svc, exc: Exception, reason: str, limit: int) -> Next:
    log.error("stage attempts exhausted", extra={"reason": reason, "attempts": limit})
    if isinstance(exc, FetchFailed):  # the vendor's results cannot be fetched: the task failed
        return finish(msg, failed(msg, ErrorReason.FAILED, reason), svc)
    return DeadLetter(f"{msg.stage.value}: gave up after {limit} attempts: {reason}")
