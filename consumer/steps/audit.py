"""AUDIT: moderate the staged results, then publish them to ``output/`` (pass) or drop them (block).

Images are judged synchronously, one by one; any block fails the task with 内容违规. Videos are judged
asynchronously: the first run starts a moderation job and re-sends itself with the job id; later runs poll it
(a job that died raises ``AuditJobFailed``, whose retry starts new jobs). Fail closed: an auditor that cannot
decide raises, the stage is retried a bounded number of times, and a task is never ``done`` without a ``PASS``
for every result.

Publishing copies exactly the bytes that were judged: each staged result's etag is taken when moderation reads
it (images: and checked against the bytes read; videos: carried in the message from the start of the jobs), and
the copy to ``output/`` is made only from that version (``copy(if_etag=...)``) and verified after. A result
that changed in between raises :class:`StagedResultChanged`, and the stage runs again, moderation included.
"""

from __future__ import annotations

import hashlib

from consumer.decisions import Continue, Decision, Finish
from consumer.services import Services
from consumer.steps.common import failed
from jobqueue.ledger.record import TaskRecord
from jobqueue.message import JobMessage
from moderation.base import AuditPending, AuditResult, UrlImageAuditor, Verdict
from moderation.errors import AuditJobFailed
from objectstore.base import ObjectInfo, is_content_md5
from objectstore.errors import ObjectChanged, ObjectNotFound
from relay_core import logs
from relay_core.domain import ErrorReason, Outcome, Status
from relay_core.errors import TaskFailed
from relay_core.ids import output_key, staging_key

log = logs.get("consumer.audit")
_FINGERPRINT_TAG = "etags:"
#: how long past the task's deadline an asynchronous moderation job may still run before the task fails
AUDIT_GRACE_S = 1800


class StagedResultChanged(AuditJobFailed):
    """A staged result is not the version moderation judged: the stage runs again and judges it anew (as an
    :class:`AuditJobFailed`, the retry also drops the video jobs, which judged the other version)."""


def run(msg: JobMessage, svc: Services, record: TaskRecord | None = None) -> Decision:
    pipeline = svc.pipelines.get(msg.pipeline)
    names = [pipeline.outputs.file_name(n) for n in range(1, pipeline.outputs.count + 1)]
    staged = [staging_key(msg.user_id, msg.task_id, name) for name in names]
    if pipeline.moderation == "video":
        judged = _video(msg, svc, staged)
        if isinstance(judged, Continue):
            return judged
        verdicts, etags = judged
    else:
        images = [_image(svc, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, start=1)]
        verdicts, etags = [v for v, _ in images], [e for _, e in images]
    blocked = [r for r in verdicts if not _passes(r, svc)]
    if blocked:
        log.warning("moderation blocked results", extra={"labels": [r.label for r in blocked], "blocked": len(blocked)})
        return Finish(failed(msg, ErrorReason.BLOCKED, ",".join(r.label for r in blocked)))
    published = [
        _publish(svc, key, output_key(msg.user_id, msg.task_id, name), etag)
        for key, name, etag in zip(staged, names, etags, strict=True)
    ]
    log.info("results published", extra={"count": len(published)})
    return Finish(Outcome(Status.DONE, tuple(published), vendor_task_id=msg.vendor_task_id))


def _publish(svc: Services, key: str, target: str, etag: str) -> str:
    """Copy the judged version ``etag`` of ``key`` to ``target``; :class:`StagedResultChanged` if it is gone."""
    try:
        info = svc.store.copy(svc.output_bucket, key, target, if_etag=etag)
    except ObjectChanged as exc:
        raise StagedResultChanged(f"{key} changed after moderation; judging it again") from exc
    # A copy's etag is the content md5 again, except that COS may give a multipart source's copy a new form.
    if info.etag != etag and is_content_md5(etag):
        svc.store.delete(svc.output_bucket, target)
        raise StagedResultChanged(f"the copy of {key} is not the judged version; judging it again")
    return target


def _passes(result: AuditResult, svc: Services) -> bool:
    if result.verdict is Verdict.PASS:
        return True
    return result.verdict is Verdict.REVIEW and svc.settings.review_passes


def _image(svc: Services, key: str, data_id: str) -> tuple[AuditResult, str]:
    """The verdict on the staged image ``key`` and the etag of the version judged."""
    info = _head(svc, key)
    if info.size > svc.auditor.max_image_bytes and isinstance(svc.auditor, UrlImageAuditor):
        url = svc.store.vendor_url(svc.output_bucket, key, expires_s=900)
        return svc.auditor.audit_image_url(url, data_id), info.etag
    data = svc.store.get_bytes(svc.output_bucket, key, limit=svc.auditor.max_image_bytes + 1)
    if len(data) > svc.auditor.max_image_bytes:
        return AuditResult(Verdict.BLOCK, label="TooLarge", detail="image over the auditor's byte limit"), info.etag
    if is_content_md5(info.etag):
        read_etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    else:  # a multipart etag cannot be recomputed from the bytes: the object must be the same after the read
        read_etag = _head(svc, key).etag
    if read_etag != info.etag:
        raise StagedResultChanged(f"{key} changed while moderation read it")
    return svc.auditor.audit_image(data, data_id), info.etag


def _head(svc: Services, key: str) -> ObjectInfo:
    info = svc.store.head(svc.output_bucket, key)
    if info is None:
        raise ObjectNotFound(f"no staged result {svc.output_bucket}/{key}")
    return info


def _video(msg: JobMessage, svc: Services, staged: list[str]) -> tuple[list[AuditResult], list[str]] | Continue:
    """Start (first run) or poll (later runs) one moderation job per staged video.

    The job ids travel in ``audit_job_id`` joined by ``|``, followed by a fingerprint of the staged videos'
    etags when the jobs started; the verdicts count only for the videos that still have those etags."""
    if svc.clock() > msg.deadline_at + AUDIT_GRACE_S:
        raise TaskFailed("video moderation did not finish in time", reason=ErrorReason.TIMEOUT)
    if not msg.audit_job_id:
        etags = [_head(svc, key).etag for key in staged]
        jobs = [
            svc.auditor.start_video(svc.output_bucket, key, f"{msg.task_id}-{i}") for i, key in enumerate(staged, 1)
        ]
        log.info("video moderation started", extra={"jobs": len(jobs)})
        return Continue(msg.next(audit_job_id="|".join([*jobs, _fingerprint(etags)]), attempt=0), 2.0)
    *jobs, fingerprint = msg.audit_job_id.split("|")
    if not fingerprint.startswith(_FINGERPRINT_TAG):
        raise StagedResultChanged("the moderation jobs do not say which versions they judge; starting new ones")
    results: list[AuditResult] = []
    for job in jobs:
        result = svc.auditor.video_result(job)
        if isinstance(result, AuditPending):
            return Continue(msg.next(attempt=0), max(1.0, result.retry_after_s))
        results.append(result)
    etags = [_head(svc, key).etag for key in staged]
    if _fingerprint(etags) != fingerprint:
        raise StagedResultChanged("a staged video changed while it was moderated; judging it again")
    return results, etags


def _fingerprint(etags: list[str]) -> str:
    """A short tag of the staged versions, small enough for the message's ``audit_job_id``."""
    return _FINGERPRINT_TAG + hashlib.sha256("|".join(etags).encode()).hexdigest()[:16]
