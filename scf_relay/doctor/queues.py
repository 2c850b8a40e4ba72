"""Queue checks: the data plane accepts our credentials; the CMQ queues exist with the attributes that
``scf-relay infra create-queues`` gives them (docs/platform.md §2)."""

from __future__ import annotations

import json
from typing import Any

from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

TDMQ_CLIENT = "tencentcloud.tdmq.v20200217.tdmq_client.TdmqClient"
INFRA_FIX = "run `scf-relay infra create-queues` (it aligns existing queues)"


def data_plane_rows(settings: RelaySettings) -> list[Row]:
    """Receive on the work queue with a 0 s wait and a 1 s visibility: a message received is back within 1 s
    (its receive count goes up by one) and released at once where the backend can release."""
    from jobqueue import open_queue
    from jobqueue.queue.base import Releasable

    queue = open_queue(settings.queue_url(), max_receive_count=settings.max_receive_count)
    try:
        got = queue.receive(1, visibility_timeout_s=1, wait_s=0)
        if got and isinstance(queue, Releasable):
            queue.release(got[0].receipt)
    finally:
        queue.close()
    seen = "a message (visible again within 1 s)" if got else "nothing ready"
    return [passed("queue: data plane accepts our credentials", f"receive answered: {seen}")]


def attribute_rows(settings: RelaySettings) -> list[Row]:
    """Both CMQ queues exist; VisibilityTimeout, retention, rewind and the dead-letter policy as infra sets."""
    name = "queue: attributes as infra creates them"
    url = settings.queue_url()
    if not url.startswith("cmq://"):
        return [unknown(name, "RELAY_QUEUE is not cmq://: no CMQ queue attributes to check")]
    from jobqueue.queue.cmq_config import parse_cmq_url
    from tencent_plumbing.api3 import ApiTarget, make_client

    where = parse_cmq_url(url)
    if where.api_region is None:
        return [unknown(name, "RELAY_QUEUE has no api_region=ap-...: the control plane is not configured")]
    client = make_client(TDMQ_CLIENT, ApiTarget(where.api_region, endpoint=where.api_endpoint))
    work, dlq = _detail(client, where.queue_name), _detail(client, where.dlq_name)
    missing = [n for n, d in ((where.queue_name, work), (where.dlq_name, dlq)) if d is None]
    if missing:
        return [failed("queue: both queues exist", f"missing {missing}: {INFRA_FIX}")]
    assert work is not None and dlq is not None
    problems = _work_problems(work, where.dlq_name, settings) + _dlq_problems(dlq, work)
    rows = [passed("queue: both queues exist", f"{where.queue_name}, {where.dlq_name}")]
    if problems:
        return [*rows, failed(name, "; ".join(problems) + f": {INFRA_FIX}")]
    return [
        *rows,
        passed(
            name,
            f"VisibilityTimeout {work.get('VisibilityTimeout')} s, dead letter after "
            f"{settings.max_receive_count} receives to {where.dlq_name}, DLQ rewind on",
        ),
    ]


def _work_problems(work: dict[str, Any], dlq: str, settings: RelaySettings) -> list[str]:
    problems = []
    visibility = int(work.get("VisibilityTimeout") or 0)
    if visibility < settings.visibility_timeout_s:
        problems.append(
            f"VisibilityTimeout {visibility} s is shorter than RELAY_VISIBILITY_TIMEOUT_S "
            f"{settings.visibility_timeout_s} s (a step could run twice)"
        )
    if settings.receive_wait_s >= visibility:
        problems.append(f"VisibilityTimeout {visibility} s does not exceed RELAY_RECEIVE_WAIT_S")
    policy = work.get("DeadLetterPolicy") or {}
    if not policy.get("DeadLetterQueue"):  # CMQ may answer the DLQ's name or its id
        problems.append(f"no dead-letter policy to {dlq}")
    if policy.get("Policy", 0) != 0 or policy.get("MaxReceiveCount") != settings.max_receive_count:
        problems.append(
            f"dead-letter policy {policy.get('Policy')}/{policy.get('MaxReceiveCount')} is not 0 (received too "
            f"often) / RELAY_MAX_RECEIVE_COUNT {settings.max_receive_count}"
        )
    return problems


def _dlq_problems(dlq: dict[str, Any], work: dict[str, Any]) -> list[str]:
    problems = []
    if not dlq.get("RewindSeconds"):
        problems.append("the dead-letter queue has no RewindSeconds (dead letters vanish after retention)")
    if dlq.get("MsgRetentionSeconds") != work.get("MsgRetentionSeconds"):
        problems.append("the two queues' MsgRetentionSeconds differ")
    return problems


def _detail(client: Any, name: str) -> dict[str, Any] | None:
    """``DescribeCmqQueueDetail`` as a dict; ``None`` for a missing queue; other errors raise."""
    from tencent_plumbing.api3 import Fault, call, fault_of, sdk_errors

    try:
        response = call(client, "DescribeCmqQueueDetail", {"QueueName": name})
    except sdk_errors() as exc:
        if fault_of(exc) is Fault.NOT_FOUND:
            return None
        raise
    detail = response.QueueDescribe
    return json.loads(detail.to_json_string()) if detail is not None else None
