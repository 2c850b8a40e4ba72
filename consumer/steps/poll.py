"""POLL: ask the vendor; still running -> poll again later; finished -> collect or fail; late -> time out.

Waiting is a delayed message, never a sleeping function. Delays follow the pipeline's poll policy (full jitter,
slower while queued) and never overshoot the deadline, so the last poll lands on it (invariant 3).
"""

from __future__ import annotations

from consumer.decisions import Continue, Decision, Finish
from consumer.delays import poll_delay, until_deadline
from consumer.services import Services
from consumer.steps.common import failed, timed_out
from jobqueue.message import JobMessage, Stage
from relay_core import logs
from relay_core.domain import ErrorReason
from relay_core.errors import OurFault
from vendors.base import VendorState

log = logs.get("consumer.poll")


def run(msg: JobMessage, svc: Services) -> Decision:
    if not msg.vendor_task_id:
        raise OurFault("poll message without vendor_task_id (was it edited by hand?)")
    pipeline = svc.pipelines.get(msg.pipeline)
    status = svc.vendor_for(pipeline).status(msg.vendor_task_id)
    now = svc.clock()
    log.info("vendor status", extra={"state": status.state.value, "polls": msg.polls + 1})
    if status.state is VendorState.SUCCEEDED:
        return Continue(msg.next(Stage.COLLECT, polls=msg.polls + 1))
    if status.state is VendorState.FAILED:
        log.warning("vendor failed the task", extra={"detail": status.detail, "code": status.raw_code})
        return Finish(failed(msg, ErrorReason.FAILED, status.detail))
    if now >= msg.deadline_at:
        return timed_out(msg, svc, cancel=True)
    delay = poll_delay(pipeline.poll, msg.polls, status.state is VendorState.QUEUED, svc.rng)
    return Continue(msg.next(polls=msg.polls + 1, attempt=0), until_deadline(delay, now, msg.deadline_at))
