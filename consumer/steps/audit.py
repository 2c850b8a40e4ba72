"""AUDIT: moderate the staged results, then publish them to ``output/`` (pass) or drop them (block).

Images are judged synchronously, one by one; any block fails the task with 内容违规. Videos are judged
asynchronously: the first run starts a moderation job and re-sends itself with the job id; later runs poll it.
Fail closed: an auditor that cannot decide raises, the stage is retried a bounded number of times, and a task
is never ``done`` without a ``PASS`` for every result (invariant 5).
"""

from __future__ import annotations

from consumer.errors import ErrorReason, RetryStep, TaskFailure
from consumer.moderation.base import AuditPending, AuditResult, Verdict
from consumer.moderation.errors import AuditJobFailed
from consumer.steps.common import failed
from consumer.transitions import Next, Send, finish
from jobqueue.ledger.base import Outcome, Status
from jobqueue.message import JobMessage
from scf_relay import logs
from scf_relay.ids import output_key, staging_key

log = logs.get("consumer.audit")
#: how long past the task's deadline an asynchronous moderation job may still run before the task fails
AUDIT_GRACE_S = 1800


def run(msg: JobMessage, svc) -> Next:
    pipeline = svc.pipelines.get(msg.pipeline)
    names = [pipeline.outputs.file_name(n) for n in range(1, pipeline.outputs.count + 1)]
    staged = [staging_key(msg.user_id, msg.task_id, name) for name in names]
    if pipeline.moderation == "video":
        verdicts = _video(msg, svc, staged)
        if isinstance(verdicts, Send):
            return verdicts
    else:
        verdicts = [_image(svc, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, start=1)]
    blocked = [r for r in verdicts if not _passes(r, svc)]
    if blocked:
        log.warning("moderation blocked results", extra={"labels": [r.label for r in blocked], "blocked": len(blocked)})
        return finish(msg, failed(msg, ErrorReason.BLOCKED, ",".join(r.label for r in blocked)), svc)
    published = []
    for key, name in zip(staged, names, strict=True):
        target = output_key(msg.user_id, msg.task_id, name)
        svc.store.copy(svc.output_bucket, key, target)
        published.append(target)
    log.info("results published", extra={"count": len(published)})
    return finish(msg, Outcome(Status.DONE, tuple(published), vendor_task_id=msg.vendor_task_id), svc)


def _passes(result: AuditResult, svc) -> bool:
    if result.verdict is Verdict.PASS:
        return True
    return result.verdict is Verdict.REVIEW and svc.settings.review_passes


def _image(svc, key: str, data_id: str) -> AuditResult:
    info = svc.store.head(svc.output_bucket, key)
    if info is not None and info.size > svc.auditor.max_image_bytes and hasattr(svc.auditor, "audit_image_url"):
        return svc.auditor.audit_image_url(svc.store.vendor_url(svc.output_bucket, key, expires_s=900), data_id)
    data = svc.store.get_bytes(svc.output_bucket, key, limit=svc.auditor.max_image_bytes + 1)
    if len(data) > svc.auditor.max_image_bytes:
        return AuditResult(Verdict.BLOCK, label="TooLarge", detail="image over the auditor's byte limit")
    return svc.auditor.audit_image(data, data_id)


def _video(msg: JobMessage, svc, staged: list[str]) -> list[AuditResult] | Send:
    """Start (first run) or poll (later runs) one moderation job per staged video."""
    if svc.clock() > msg.deadline_at + AUDIT_GRACE_S:
        raise TaskFailure(ErrorReason.TIMEOUT, "video moderation did not finish in time")
    if not msg.audit_job_id:
        jobs = [
            svc.auditor.start_video(svc.output_bucket, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, 1)
        ]
        log.info("video moderation started", extra={"jobs": len(jobs)})
        return Send(msg.next(audit_job_id="|".join(jobs), attempt=0), 2.0)
    results: list[AuditResult] = []
    for job in msg.audit_job_id.split("|"):
        try:
            result = svc.auditor.video_result(job)
        except AuditJobFailed as exc:  # the job is dead: start new ones (bounded by the stage's attempts)
            raise RetryStep(f"video moderation job failed: {exc}", restart_audit=True) from None
        if isinstance(result, AuditPending):
            return Send(msg.next(attempt=0), max(1.0, result.retry_after_s))
        results.append(result)
    return results
