"""Pieces shared by several stages."""

from __future__ import annotations

from consumer.errors import ErrorReason
from consumer.transitions import Send, finish
from jobqueue.ledger.base import Outcome, Status
from jobqueue.message import JobMessage
from scf_relay import logs
from vendors.errors import OurSideError, VendorError

log = logs.get("consumer")


def failed(msg: JobMessage, reason: ErrorReason, detail: str = "") -> Outcome:
    return Outcome(Status.FAILED, error_reason=reason.value, vendor_task_id=msg.vendor_task_id, detail=detail)


def timed_out(msg: JobMessage, svc, *, cancel: bool) -> Send:
    """The deadline passed: stop the vendor job (best effort, it bills) and fail the task with 生成超时."""
    if cancel and msg.vendor_task_id:
        pipeline = svc.pipelines.get(msg.pipeline)
        try:
            svc.vendor_for(pipeline).cancel(msg.vendor_task_id)
        except OurSideError:
            raise
        except VendorError as exc:
            log.warning("cancel after timeout failed", extra={"detail": str(exc)})
    log.warning("task deadline passed", extra={"deadline_at": msg.deadline_at})
    return finish(msg, failed(msg, ErrorReason.TIMEOUT, "deadline passed"), svc)
