"""The CMQ control plane (API 3.0, ``tencentcloud.tdmq.v20200217``): provision queues and read their counts.

The data plane (:mod:`jobqueue.queue.cmq`) cannot create queues or count messages; this module can, through
``CreateCmqQueue``, ``ModifyCmqQueueAttribute``, ``DescribeCmqQueueDetail`` and ``RewindCmqQueue``. Used by
deployment (``scf-relay infra``) and, as :class:`ControlPlaneStats`, by the CMQ operator plane
(:mod:`jobqueue.queue.cmq_dead_letters`) for queue statistics.

* :func:`ensure_queues` is idempotent: it creates the dead-letter queue first (with ``RewindSeconds`` so dead
  letters can be brought back after its 12 h retention, and a short visibility timeout because inspecting a
  CMQ dead-letter queue hides what it looks at), then the work queue with the dead-letter policy
  "received too often" (``Policy`` 0). Existing queues are modified to match; it reports what it did.
* Error codes where the documentation is silent (unconfirmed): a missing queue is taken to answer a code
  starting ``ResourceNotFound``; creating an existing one ``ResourceInUse`` (the SDK lists
  ``ResourceInUse.Queue``). The dead-letter policy's ``DeadLetterQueue`` may hold the DLQ's name or its id:
  both are accepted as "unchanged".
"""

from __future__ import annotations

import enum
import json
from typing import Any

from jobqueue.errors import BackendUnavailable, QueueConfigError, QueueError
from jobqueue.queue.base import QueueStats, StatsSource
from jobqueue.queue.cmq_config import check_queue_name
from relay_core import logs
from tencent_plumbing.api3 import ApiTarget, Fault, call, describe, fault_of, make_client, sdk_errors

log = logs.get("jobqueue.cmq_admin")

TDMQ_CLIENT = "tencentcloud.tdmq.v20200217.tdmq_client.TdmqClient"
POLICY_MAX_RECEIVE = 0  # dead-letter when received more than MaxReceiveCount times
_LIMITS = {
    "visibility_timeout_s": (1, 43_200),
    "retention_s": (30, 43_200),
    "max_receive_count": (1, 1_000),
    "dlq_rewind_s": (0, 1_296_000),
    "dlq_visibility_timeout_s": (1, 43_200),
}


class QueueChange(str, enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def ensure_queues(
    target: ApiTarget,
    queue: str,
    dlq: str,
    *,
    visibility_timeout_s: int,
    retention_s: int,
    max_receive_count: int,
    dlq_rewind_s: int,
    dlq_visibility_timeout_s: int = 5,
) -> dict[str, QueueChange]:
    """Create or align the DLQ and the work queue; returns ``{name: QueueChange}`` (DLQ first)."""
    check_queue_name(queue)
    check_queue_name(dlq, "dead-letter queue")
    if queue.lower() == dlq.lower():  # CMQ queue names are case-insensitive
        raise QueueConfigError("RELAY_QUEUE: the CMQ dead-letter queue must differ from the work queue")
    _check_limits(
        visibility_timeout_s=visibility_timeout_s,
        retention_s=retention_s,
        max_receive_count=max_receive_count,
        dlq_rewind_s=dlq_rewind_s,
        dlq_visibility_timeout_s=dlq_visibility_timeout_s,
    )
    client = make_client(TDMQ_CLIENT, target)
    dlq_attrs = {
        "VisibilityTimeout": dlq_visibility_timeout_s,
        "MsgRetentionSeconds": retention_s,
        "RewindSeconds": dlq_rewind_s,
    }
    queue_attrs = {
        "VisibilityTimeout": visibility_timeout_s,
        "MsgRetentionSeconds": retention_s,
        "DeadLetterQueueName": dlq,
        "Policy": POLICY_MAX_RECEIVE,
        "MaxReceiveCount": max_receive_count,
    }
    changes = {dlq: _ensure(client, dlq, dlq_attrs)}
    dlq_id = str(_require(client, dlq).get("QueueId") or "")
    changes[queue] = _ensure(client, queue, queue_attrs, dlq_id=dlq_id)
    log.info("cmq queues ensured", extra={"changes": {name: change.value for name, change in changes.items()}})
    return changes


def queue_stats(target: ApiTarget, queue: str, dlq: str | None = None) -> QueueStats:
    """Counts from ``DescribeCmqQueueDetail``: ready = active, in flight = inactive, delayed = delayed;
    dead = every message in ``dlq`` (0 without one). Counts are the service's, refreshed by it (not exact)."""
    client = make_client(TDMQ_CLIENT, target)
    work = _require(client, queue)
    dead = 0
    if dlq:
        detail = _require(client, dlq)
        dead = sum(_count(detail, name) for name in ("ActiveMsgNum", "InactiveMsgNum", "DelayMsgNum"))
    return QueueStats(
        ready=_count(work, "ActiveMsgNum"),
        delayed=_count(work, "DelayMsgNum"),
        in_flight=_count(work, "InactiveMsgNum"),
        dead=dead,
    )


class ControlPlaneStats(StatsSource):
    """:func:`queue_stats` of one work queue and its dead-letter queue, as a StatsSource."""

    def __init__(self, target: ApiTarget, queue: str, dlq: str | None = None) -> None:
        self.target, self.queue, self.dlq = target, check_queue_name(queue), dlq

    def __repr__(self) -> str:
        return f"ControlPlaneStats({self.queue!r}, dlq={self.dlq!r}, region={self.target.region!r})"

    def stats(self) -> QueueStats:
        """One ``DescribeCmqQueueDetail`` per queue (the service's counts, not exact). Raises QueueConfigError
        for a missing queue or refused credentials, BackendUnavailable when the API is unreachable."""
        return queue_stats(self.target, self.queue, self.dlq)


def rewind_queue(target: ApiTarget, queue: str, start_unix_s: int) -> None:
    """Make messages acknowledged since ``start_unix_s`` receivable again (needs ``RewindSeconds`` > 0)."""
    check_queue_name(queue)
    _call(
        make_client(TDMQ_CLIENT, target),
        "RewindCmqQueue",
        {"QueueName": queue, "StartConsumeTime": start_unix_s},
    )


# -- internals ------------------------------------------------------------------------------------


def _check_limits(**values: int) -> None:
    for name, value in values.items():
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise QueueConfigError(f"CMQ {name}={value} is outside {low}..{high} (the CMQ limits)")


def _ensure(client: Any, name: str, wanted: dict[str, Any], *, dlq_id: str = "") -> QueueChange:
    current = _describe(client, name)
    if current is None:
        try:
            _call(client, "CreateCmqQueue", {"QueueName": name, **wanted})
            return QueueChange.CREATED
        except _Conflict:  # created meanwhile by someone else: align it like an existing one
            current = _require(client, name)
    if _matches(current, wanted, dlq_id):
        return QueueChange.UNCHANGED
    _call(client, "ModifyCmqQueueAttribute", {"QueueName": name, **wanted})
    return QueueChange.UPDATED


def _matches(current: dict[str, Any], wanted: dict[str, Any], dlq_id: str) -> bool:
    policy = current.get("DeadLetterPolicy") or {}
    for key, value in wanted.items():
        if key == "DeadLetterQueueName":
            have = str(policy.get("DeadLetterQueue") or "")
            if have.lower() != value.lower() and (not dlq_id or have != dlq_id):
                return False
        elif key in ("Policy", "MaxReceiveCount"):
            if policy.get(key) != value:
                return False
        elif current.get(key) != value:
            return False
    return True


def _count(detail: dict[str, Any], name: str) -> int:
    return int(detail.get(name) or 0)


def _describe(client: Any, name: str) -> dict[str, Any] | None:
    """The queue's attributes as a dict, or ``None`` when it does not exist."""
    try:
        response = _call(client, "DescribeCmqQueueDetail", {"QueueName": name})
    except _NotFound:
        return None
    detail = response.QueueDescribe
    return json.loads(detail.to_json_string()) if detail is not None else None


def _require(client: Any, name: str) -> dict[str, Any]:
    detail = _describe(client, name)
    if detail is None:
        raise QueueConfigError(f"RELAY_QUEUE: CMQ queue {name!r} does not exist (scf-relay infra creates it)")
    return detail


class _NotFound(QueueConfigError):
    pass


class _Conflict(QueueError):
    pass


def _call(client: Any, action: str, params: dict[str, Any]) -> Any:
    try:
        return call(client, action, params)
    except sdk_errors() as exc:
        raise _translate(exc, action, params.get("QueueName", "")) from None


def _translate(exc: BaseException, action: str, queue: str) -> QueueError:
    text = f"CMQ {action} {queue!r} failed: {describe(exc)}"
    fault = fault_of(exc)
    if fault is Fault.NOT_FOUND:
        return _NotFound(text)
    if fault is Fault.CONFLICT:
        return _Conflict(text)
    if fault in (Fault.OURS, Fault.REJECTED):
        return QueueConfigError(text)
    if getattr(exc, "code", "") in ("ClientNetworkError", "ServerNetworkError"):
        return BackendUnavailable(text)
    return BackendUnavailable(text)
