"""POLL: ask the vendor; still running -> poll again later; finished -> collect or fail; late -> time out.

Waiting is a delayed message, never a sleeping function. Delays follow the pipeline's poll policy (full jitter,
slower while queued) and never overshoot the deadline, so the last poll lands on it (invariant 3).

The first poll comes near the pipeline's observed runtime (:func:`first_poll_s`): a poll that sees the job
finished records when (``mark_vendor_done``, with the hop's end for the common success: a later webhook for the
task is then dropped) and, for a success, folds the time since submission into the pipeline's estimate in the
ledger. A POLL may also be a webhook's hint (built by the webhook entry from the first POLL hop): it runs like any
poll, so the vendor's answer decides.

Where the queue and the ledger allow it (:mod:`consumer.dispatch`), a poll asks (:func:`ask`) before its hop takes
the ledger's lease, and a job still running (:func:`running`) needs none: the hop's end sends the next poll only
if it is the first end of that hop. Only a job that ended, or a deadline that passed, takes the lease first.

A task may have two vendor jobs (an ambiguous submit's job, named by its webhook, and a resubmission an operator
made): the first one seen finished is used, and the other one is cancelled (``mark_vendor_done``).
"""

from __future__ import annotations

from consumer.decisions import Continue, Decision, Drop, Finish
from consumer.delays import poll_delay, until_deadline
from consumer.services import Services
from consumer.steps.common import failed, timed_out
from jobqueue.ledger import rules
from jobqueue.ledger.record import TaskRecord, VendorDone
from jobqueue.message import JobMessage, Stage
from relay_core import logs
from relay_core.domain import ErrorReason
from relay_core.errors import OurFault
from relay_core.pipelines import Pipeline
from vendors.base import VendorState, VendorStatus
from vendors.errors import VendorConfigError, VendorError

log = logs.get("consumer.poll")


def run(
    msg: JobMessage, svc: Services, record: TaskRecord | None = None, status: VendorStatus | None = None
) -> Decision:
    """``status``: the vendor's answer when this hop already asked for it (:func:`ask`)."""
    vendor_task_id = _vendor_task_id(msg)
    if status is None:
        status = ask(msg, svc)
    pipeline = svc.pipelines.get(msg.pipeline)
    now = svc.clock()
    vendor_done = None
    if status.state in (VendorState.SUCCEEDED, VendorState.FAILED):
        done, vendor_done = _seen_finished(msg.task_id, vendor_task_id, status.state, svc, record, now)
        if done.use != vendor_task_id:  # another job of the task was seen finished first: that one counts
            log.info("vendor job superseded by another job of the task", extra={"used": done.use})
            return Drop("another vendor job of the task is used")
        _cancel_superseded(done.cancel, pipeline, svc)
        took = done.took_s
        if took is not None and status.state is VendorState.SUCCEEDED and svc.settings.poll_from_estimate:
            low, high = estimate_bounds(pipeline)
            first = msg.polls == 0
            svc.ledger.observe_runtime(pipeline.name, took, first_poll=first, low_s=low, high_s=high, now=now)
    if status.state is VendorState.SUCCEEDED:
        svc.seen_finished.put(pipeline.vendor, vendor_task_id, status)
        return Continue(msg.next(Stage.COLLECT, polls=msg.polls + 1), vendor_done=vendor_done)
    if status.state is VendorState.FAILED:
        log.warning("vendor failed the task", extra={"detail": status.detail, "code": status.raw_code})
        # past the deadline the job may have ended because we cancelled it (a run that cancelled it died
        # before recording 生成超时): the task timed out, whatever the vendor calls it now
        reason = ErrorReason.TIMEOUT if now >= msg.deadline_at else ErrorReason.FAILED
        return Finish(failed(msg, reason, status.detail))
    later = running(msg, svc, status)
    return later if later is not None else timed_out(msg, svc, cancel=True)


def ask(msg: JobMessage, svc: Services) -> VendorStatus:
    """The status query of the hop's vendor job."""
    pipeline = svc.pipelines.get(msg.pipeline)
    status = svc.vendor_for(pipeline).status(_vendor_task_id(msg))
    log.info("vendor status", extra={"state": status.state.value, "polls": msg.polls + 1})
    return status


def _vendor_task_id(msg: JobMessage) -> str:
    if not msg.vendor_task_id:
        raise OurFault("poll message without vendor_task_id (was it edited by hand?)")
    return msg.vendor_task_id


def running(msg: JobMessage, svc: Services, status: VendorStatus) -> Continue | None:
    """The next poll, when ``status`` says the job has not ended and the task's deadline has not passed: a decision
    that reads and changes nothing of the task, so a hop may make it without its lease; else ``None``."""
    now = svc.clock()
    if status.state in (VendorState.SUCCEEDED, VendorState.FAILED) or now >= msg.deadline_at:
        return None
    pipeline = svc.pipelines.get(msg.pipeline)
    delay = poll_delay(pipeline.poll, msg.polls, status.state is VendorState.QUEUED, svc.rng)
    return Continue(msg.next(polls=msg.polls + 1, attempt=0), until_deadline(delay, now, msg.deadline_at))


def _seen_finished(
    task_id: str, vendor_task_id: str, state: VendorState, svc: Services, record: TaskRecord | None, now: float
) -> tuple[VendorDone, str | None]:
    """``mark_vendor_done`` of the job this poll saw finished, and the vendor id still to record with the hop's end
    (``None``: already written). The success of the task's only job, as the hop's record (fresh with its lease)
    shows it, is answered from that record and written with the hop's end, one write fewer; anything else is
    written now. A race the record could not show (a webhook's other job seen finished first by a hint's poll)
    is still settled by the write: the first job recorded finished is used, and COLLECT drops any other."""
    if (
        state is VendorState.SUCCEEDED
        and record is not None
        and record.vendor_task_id == vendor_task_id
        and not record.webhook_vendor_ids
        and not record.cancelled_vendor_ids
    ):  # the task's only job, as far as the record shows
        return rules.mark_vendor_done(record, vendor_task_id, now)[1], vendor_task_id
    return svc.ledger.mark_vendor_done(task_id, vendor_task_id, now), None


def _cancel_superseded(vendor_task_ids: tuple[str, ...], pipeline: Pipeline, svc: Services) -> None:
    """Cancel the task's other vendor jobs: this one finished first (best effort: a job that ends anyway only
    bills; ``tasks show`` lists them)."""
    for vendor_task_id in vendor_task_ids:
        try:
            svc.vendor_for(pipeline).cancel(vendor_task_id)
            log.warning("cancelled a second vendor job of the task", extra={"cancelled": vendor_task_id})
        except VendorConfigError:
            raise
        except VendorError as exc:
            log.warning("cancel of a second vendor job failed", extra={"cancelled": vendor_task_id, "detail": str(exc)})


def estimate_bounds(pipeline: Pipeline) -> tuple[float, float]:
    """Where a runtime estimate may go: from the policy's ``first_s`` to half the pipeline's deadline."""
    return pipeline.poll.first_s, max(pipeline.poll.first_s, pipeline.deadline_s / 2)


#: with a webhook on its way, the first poll is only the fallback: this many times the expected runtime
WEBHOOK_FALLBACK_FACTOR = 2.0


def first_poll_s(svc: Services, pipeline: Pipeline, *, webhook: bool = False) -> float:
    """Delay from the submission to the first status query: the pipeline's runtime estimate within
    :func:`estimate_bounds`, or the policy's ``first_s`` (no estimate yet, or ``RELAY_POLL_FROM_ESTIMATE=0``).
    ``webhook``: the submit sent a webhookUrl, so the first poll is a fallback, :data:`WEBHOOK_FALLBACK_FACTOR`
    times later (plus the policy's ``max_s``), still within the bounds."""
    expected = pipeline.poll.first_s
    if svc.settings.poll_from_estimate and (estimate := svc.ledger.runtime_estimate(pipeline.name)) is not None:
        expected = estimate.estimate_s
    low, high = estimate_bounds(pipeline)
    if webhook:
        expected = expected * WEBHOOK_FALLBACK_FACTOR + pipeline.poll.max_s
    return min(max(expected, low), high)
