"""REPORT: tell the backend the ledger's outcome, signed; resend later on failure, never redo work.

The body comes from the ledger, not from the message, so every run reports the same first-recorded outcome
(invariant 1). Connect errors, 5xx and 429 are retried with backoff for a few seconds inside the step, then the
step re-sends itself with a growing delay, up to ``RELAY_REPORT_MAX_ATTEMPTS`` hops; a 4xx means our request is
wrong (secret, URL) and dead-letters at once so an operator can fix the configuration and redrive.
"""

from __future__ import annotations

import backoff

from consumer.callback import Delivery, ReportResult
from consumer.errors import DeadLetterStep, RetryStep
from consumer.transitions import Ack, Next
from jobqueue.ledger.base import Status
from jobqueue.message import JobMessage
from scf_relay import logs
from scf_relay.ids import output_prefix

log = logs.get("consumer.report")


def run(msg: JobMessage, svc) -> Next:
    record = svc.ledger.get(msg.task_id)
    if record is None or record.outcome is None:
        raise DeadLetterStep("report without a recorded outcome (ledger lost or expired?)")
    if record.reported_at is not None:
        return Ack("already reported")
    if record.outcome.status is Status.FAILED:  # also for outcomes an operator recorded: nothing under output/
        svc.store.delete_prefix(svc.output_bucket, output_prefix(msg.user_id, msg.task_id))
    result = _post_with_retries(svc, msg.task_id, record.outcome)
    if result.delivery is Delivery.DELIVERED:
        svc.ledger.mark_reported(msg.task_id, svc.clock())
        log.info("reported", extra={"status": record.outcome.status.value, "error_reason": record.outcome.error_reason})
        return Ack("reported")
    if result.delivery is Delivery.REJECTED:
        raise DeadLetterStep(
            f"backend rejected the report: {result.detail}; check RELAY_CALLBACK_SECRET/RELAY_BACKEND_URL"
        )
    raise RetryStep(f"backend unreachable: {result.detail}")


def _post_with_retries(svc, task_id: str, outcome) -> ReportResult:
    @backoff.on_predicate(
        backoff.expo,
        lambda r: r.delivery is Delivery.RETRY,
        max_time=svc.settings.report_retry_s,
        jitter=backoff.full_jitter,
        factor=0.5,
        max_value=4,
        logger=None,
    )
    def attempt() -> ReportResult:
        result = svc.reporter.post(task_id, outcome)
        if result.delivery is Delivery.RETRY:
            log.warning("report not delivered yet", extra={"detail": result.detail})
        return result

    return attempt()
