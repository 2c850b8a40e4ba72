"""AUDIT: moderate the staged results, then publish them to ``output/`` (pass) or drop them (block).

Images are judged synchronously, one by one; any block fails the task with 内容违规. Videos are judged
asynchronously: the first run starts a moderation job and re-sends itself with the job id; later runs poll it
(a job that died raises ``AuditJobFailed``, whose retry starts new jobs). Fail closed: an auditor that cannot
decide raises, the stage is retried a bounded number of times, and a task is never ``done`` without a ``PASS``
for every result.
"""

from __future__ import annotations

from consumer.decisions import Continue, Decision, Finish
from consumer.services import Services
from consumer.steps.common import failed
from jobqueue.message import JobMessage
from moderation.base import AuditPending, AuditResult, UrlImageAuditor, Verdict
from relay_core import logs
from relay_core.domain import ErrorReason, Outcome, Status
from relay_core.errors import TaskFailed
from relay_core.ids import output_key, staging_key

log = logs.get("consumer.audit")
#: how long past the task's deadline an asynchronous moderation job may still run before the task fails
AUDIT_GRACE_S = 1800


def run(msg: JobMessage, svc: Services) -> Decision:
    pipeline = svc.pipelines.get(msg.pipeline)
    names = [pipeline.outputs.file_name(n) for n in range(1, pipeline.outputs.count + 1)]
    staged = [staging_key(msg.user_id, msg.task_id, name) for name in names]
    if pipeline.moderation == "video":
        verdicts = _video(msg, svc, staged)
        if isinstance(verdicts, Continue):
            return verdicts
    else:
        verdicts = [_image(svc, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, start=1)]
    blocked = [r for r in verdicts if not _passes(r, svc)]
    if blocked:
        log.warning("moderation blocked results", extra={"labels": [r.label for r in blocked], "blocked": len(blocked)})
        return Finish(failed(msg, ErrorReason.BLOCKED, ",".join(r.label for r in blocked)))
    published = []
    for key, name in zip(staged, names, strict=True):
        target = output_key(msg.user_id, msg.task_id, name)
        svc.store.copy(svc.output_bucket, key, target)
        published.append(target)
    log.info("results published", extra={"count": len(published)})
    return Finish(Outcome(Status.DONE, tuple(published), vendor_task_id=msg.vendor_task_id))


def _passes(result: AuditResult, svc: Services) -> bool:
    if result.verdict is Verdict.PASS:
        return True
    return result.verdict is Verdict.REVIEW and svc.settings.review_passes


def _image(svc: Services, key: str, data_id: str) -> AuditResult:
    info = svc.store.head(svc.output_bucket, key)
    if info is not None and info.size > svc.auditor.max_image_bytes and isinstance(svc.auditor, UrlImageAuditor):
        return svc.auditor.audit_image_url(svc.store.vendor_url(svc.output_bucket, key, expires_s=900), data_id)
    data = svc.store.get_bytes(svc.output_bucket, key, limit=svc.auditor.max_image_bytes + 1)
    if len(data) > svc.auditor.max_image_bytes:
        return AuditResult(Verdict.BLOCK, label="TooLarge", detail="image over the auditor's byte limit")
    return svc.auditor.audit_image(data, data_id)


def _video(msg: JobMessage, svc: Services, staged: list[str]) -> list[AuditResult] | Continue:
    """Start (first run) or poll (later runs) one moderation job per staged video."""
    if svc.clock() > msg.deadline_at + AUDIT_GRACE_S:
        raise TaskFailed("video moderation did not finish in time", reason=ErrorReason.TIMEOUT)
    if not msg.audit_job_id:
        jobs = [
            svc.auditor.start_video(svc.output_bucket, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, 1)
        ]
        log.info("video moderation started", extra={"jobs": len(jobs)})
        return Continue(msg.next(audit_job_id="|".join(jobs), attempt=0), 2.0)
    results: list[AuditResult] = []
    for job in msg.audit_job_id.split("|"):
        result = svc.auditor.video_result(job)
        if isinstance(result, AuditPending):
            return Continue(msg.next(attempt=0), max(1.0, result.retry_after_s))
        results.append(result)
    return results
