"""Pieces shared by several stages."""

from __future__ import annotations

from consumer.decisions import Finish
from consumer.services import Services
from jobqueue.message import JobMessage
from relay_core import logs
from relay_core.domain import ErrorReason, Outcome
from vendors.errors import VendorConfigError, VendorError

log = logs.get("consumer")


def failed(msg: JobMessage, reason: ErrorReason, detail: str = "") -> Outcome:
    return Outcome.failed(reason, detail, vendor_task_id=msg.vendor_task_id)


def timed_out(msg: JobMessage, svc: Services, *, cancel: bool) -> Finish:
    """The deadline passed: stop the vendor job (best effort, it bills) and fail the task with 生成超时."""
    if cancel and msg.vendor_task_id:
        pipeline = svc.pipelines.get(msg.pipeline)
        try:
            svc.vendor_for(pipeline).cancel(msg.vendor_task_id)
        except VendorConfigError:
            raise
        except VendorError as exc:
            log.warning("cancel after timeout failed", extra={"detail": str(exc)})
    log.warning("task deadline passed", extra={"deadline_at": msg.deadline_at})
    return Finish(failed(msg, ErrorReason.TIMEOUT, "deadline passed"))
