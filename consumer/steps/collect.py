"""COLLECT: stream every result into the private staging area, checked; then moderate it (AUDIT).

Results go to ``staging/{userId}/{taskId}/<name>`` first; only AUDIT promotes them to ``output/`` once they
pass moderation, so a blocked result is never visible under ``output/`` (invariant 5). Vendor URLs stay in
this step: messages and logs never carry them (invariant 6).
"""

from __future__ import annotations

from consumer.decisions import Continue, Decision
from consumer.services import Services
from jobqueue.message import JobMessage, Stage
from relay_core import logs
from relay_core.errors import TaskFailed
from relay_core.ids import staging_key
from vendors.base import VendorState

log = logs.get("consumer.collect")


def run(msg: JobMessage, svc: Services) -> Decision:
    pipeline = svc.pipelines.get(msg.pipeline)
    status = svc.vendor_for(pipeline).status(msg.vendor_task_id or "")
    if status.state is not VendorState.SUCCEEDED:
        raise TaskFailed(f"vendor state changed to {status.state.value} after success")
    spec = pipeline.outputs
    if len(status.outputs) < spec.count:
        raise TaskFailed(f"vendor returned {len(status.outputs)} outputs, expected {spec.count}")
    if len(status.outputs) > spec.count:
        log.warning("vendor returned extra outputs; keeping the first", extra={"returned": len(status.outputs)})
    total = 0
    for n, output in enumerate(status.outputs[: spec.count], start=1):
        key = staging_key(msg.user_id, msg.task_id, spec.file_name(n))
        info, kind = svc.fetcher.copy_to_store(
            output.url, svc.store, svc.output_bucket, key, max_bytes=spec.max_bytes, types=spec.types
        )
        total += info.size
        log.info("result staged", extra={"n": n, "key": key, "bytes": info.size, "type": kind})
    log.info("results collected", extra={"count": spec.count, "bytes": total})
    return Continue(msg.next(Stage.AUDIT, audit_job_id=None))
