"""REPORT: tell the backend the ledger's outcome, signed; resend later on failure, never redo work.

The body comes from the ledger, not from the message, so every run reports the same first-recorded outcome.
Before posting, the task's private staging files are removed, and a ``failed`` task keeps nothing under
``output/`` (also for outcomes an operator recorded), whoever wrote it. Connect errors, 5xx and 429 are retried
with backoff for a few seconds inside the step, then the step re-sends itself with a growing delay, up to
``RELAY_REPORT_MAX_ATTEMPTS`` hops; a 4xx means our request is wrong (secret, URL) and dead-letters at once so an
operator can fix the configuration and redrive.
"""

from __future__ import annotations

from consumer.callback import Delivery, ReportResult
from consumer.decisions import Decision, Drop, Reported
from consumer.services import Services
from jobqueue.ledger.record import TaskRecord
from jobqueue.message import JobMessage
from relay_core import logs
from relay_core.domain import Outcome, Status
from relay_core.errors import OurFault, Transient
from relay_core.ids import output_prefix, staging_prefix

log = logs.get("consumer.report")


def run(msg: JobMessage, svc: Services, record: TaskRecord | None = None) -> Decision:
    if record is None:
        record = svc.ledger.get(msg.task_id)
    if record is None or record.outcome is None:
        raise OurFault("report without a recorded outcome (ledger lost or expired?)")
    if record.reported_at is not None:
        return Drop("already reported")
    svc.store.delete_prefix(svc.output_bucket, staging_prefix(msg.user_id, msg.task_id))
    if record.outcome.status is Status.FAILED:
        removed = svc.store.delete_prefix(svc.output_bucket, output_prefix(msg.user_id, msg.task_id))
        if removed:
            log.warning("removed outputs of a failed task", extra={"removed": removed})
    result = _post_with_retries(svc, msg.task_id, record.outcome)
    if result.delivery is Delivery.DELIVERED:
        log.info("reported", extra={"status": record.outcome.status.value, "error_reason": record.outcome.error_reason})
        return Reported()
    if result.delivery is Delivery.REJECTED:
        raise OurFault(f"backend rejected the report: {result.detail}; check RELAY_CALLBACK_SECRET/RELAY_BACKEND_URL")
    raise Transient(f"backend unreachable: {result.detail}")


def _post_with_retries(svc: Services, task_id: str, outcome: Outcome) -> ReportResult:
    import backoff  # here, not at import: it loads asyncio, and only a REPORT hop needs it

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
