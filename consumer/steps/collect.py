"""COLLECT: stream every result into the private staging area, checked; then moderate it (AUDIT).

Results go to ``staging/{userId}/{taskId}/<name>`` first; only AUDIT promotes them to ``output/`` once they
pass moderation, so a blocked result is never visible under ``output/`` (invariant 5). Vendor URLs stay in
this step, and in the poll's answer kept for it in memory (:mod:`consumer.seen_finished`, which spares the
vendor a second status query): messages and logs never carry them (invariant 6).

A staged result is written once and never replaced (``overwrite=False``): moderation judges those bytes, and a
second run of this hop (a redelivered message) keeps what is staged instead of downloading again over it. The
downloads of one run end well inside what is left of the hop's lease (the queue's visibility timeout, less what
the poll it joined used), so the message does not become visible to a second runner while this one still writes.
"""

from __future__ import annotations

import time

from consumer.decisions import Continue, Decision, Drop
from consumer.services import Services
from jobqueue.ledger.record import TaskRecord
from jobqueue.message import JobMessage, Stage
from objectstore.base import ObjectInfo
from objectstore.errors import ObjectExists, StoreUnavailable
from relay_core import logs
from relay_core.errors import TaskFailed
from relay_core.filetypes import HEAD_BYTES, sniff
from relay_core.ids import staging_key, staging_prefix
from relay_core.pipelines import OutputSpec
from vendors.base import VendorState

log = logs.get("consumer.collect")


def download_budget_s(lease_s: float) -> float:
    """How long one COLLECT run may spend downloading: the hop's lease left minus a margin (a fifth, at least 5 s)
    for what follows the downloads: completing the upload, sending the next message, closing the hop."""
    return max(1.0, lease_s - max(5.0, lease_s / 5))


def run(msg: JobMessage, svc: Services, record: TaskRecord | None = None) -> Decision:
    # imported here, as in _staged: consumer.fetch loads httpx, which the consumer's import leaves to the adapters
    from consumer.fetch import FetchFailed

    used = record.vendor_task_id if record is not None and record.vendor_done_at is not None else None
    if used is not None and used != msg.vendor_task_id:  # another job of the task was seen finished first
        log.info("vendor job superseded by another job of the task", extra={"used": used})
        return Drop("another vendor job of the task is used")
    lease_s = float(svc.settings.visibility_timeout_s)
    if record is not None and record.hop_until > 0:  # what is left of the hop's lease (less when joined to a poll)
        lease_s = min(lease_s, max(0.0, record.hop_until - svc.clock()))
    ends_at = time.monotonic() + download_budget_s(lease_s)
    pipeline = svc.pipelines.get(msg.pipeline)
    vendor_task_id = msg.vendor_task_id or ""
    status = svc.seen_finished.take(pipeline.vendor, vendor_task_id) or svc.vendor_for(pipeline).status(vendor_task_id)
    if status.state is not VendorState.SUCCEEDED:
        raise TaskFailed(f"vendor state changed to {status.state.value} after success")
    spec = pipeline.outputs
    if len(status.outputs) < spec.count:
        raise TaskFailed(f"vendor returned {len(status.outputs)} outputs, expected {spec.count}")
    if len(status.outputs) > spec.count:
        log.warning("vendor returned extra outputs; keeping the first", extra={"returned": len(status.outputs)})
    total = 0
    # one listing instead of a HEAD per result: what an earlier run of this hop staged (usually nothing)
    listed = {info.key: info for info in svc.store.list(svc.output_bucket, staging_prefix(msg.user_id, msg.task_id))}
    with svc.fetcher.session(max(0.0, ends_at - time.monotonic())) as session:
        for n, output in enumerate(status.outputs[: spec.count], start=1):
            key = staging_key(msg.user_id, msg.task_id, spec.file_name(n))
            staged = _staged(svc, key, spec, listed[key]) if key in listed else None
            if staged is None:
                if time.monotonic() >= ends_at:  # the retry keeps what is staged and downloads the rest
                    raise FetchFailed("no time left in this hop's lease to download the result")
                try:
                    staged = session.copy_to_store(
                        output.url,
                        svc.store,
                        svc.output_bucket,
                        key,
                        max_bytes=spec.max_bytes,
                        types=spec.types,
                        overwrite=False,
                    )
                except ObjectExists:  # another runner of this hop staged it first: keep theirs
                    staged = _staged(svc, key, spec)
                    if staged is None:
                        raise StoreUnavailable(f"staged result {key} existed, then vanished") from None
            info, kind = staged
            total += info.size
            log.debug("result staged", extra={"n": n, "key": key, "bytes": info.size, "type": kind})
    log.info("results collected", extra={"count": spec.count, "bytes": total})
    return Continue(msg.next(Stage.AUDIT, audit_job_id=None))


def _staged(svc: Services, key: str, spec: OutputSpec, info: ObjectInfo | None = None) -> tuple[ObjectInfo, str] | None:
    """The result already staged under ``key`` (checked as a download would be), or ``None``; ``info``: the
    object as a listing just showed it (else it is looked up)."""
    from consumer.fetch import FetchRejected

    info = info or svc.store.head(svc.output_bucket, key)
    if info is None:
        return None
    kind = sniff(svc.store.get_bytes(svc.output_bucket, key, limit=HEAD_BYTES))
    if kind not in spec.types or info.size > spec.max_bytes:
        raise FetchRejected(f"the staged result {key} is {kind or 'of an unknown type'}, {info.size} bytes")
    log.info("result already staged; kept", extra={"key": key})
    return info, kind
