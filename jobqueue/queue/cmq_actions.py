"""The CMQ data-plane actions on any queue by name, and the dead-letter envelope: what the work-queue client
(:mod:`jobqueue.queue.cmq`) and the dead-letter reader (:mod:`jobqueue.queue.cmq_dead_letters`) share.

The data plane (``/v2/index.php``) sends, receives and deletes; nothing else. A send batch holds at most 16
bodies and 64 KB; a long poll waits at most 30 s; ``delaySeconds`` is whole seconds.

An explicit dead letter is a JSON envelope ``{"reason", "message_id", "receive_count", "dead_at", "body"}`` in
the dead-letter queue; a message the server's policy moved there (received more than ``MaxReceiveCount``
times) keeps its raw body, and is reported with :func:`~jobqueue.queue.base.exceeded_reason`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

from jobqueue.errors import BackendUnavailable
from jobqueue.queue.base import DeadLetter, Received, exceeded_reason
from jobqueue.queue.cmq_http import CmqApiError, CmqClient

BATCH_MAX_MESSAGES = 16
BATCH_MAX_BYTES = 64 * 1024
MAX_POLLING_WAIT_S = 30
_ENVELOPE_KEYS = frozenset({"reason", "message_id", "receive_count", "dead_at", "body"})


class CmqActions:
    """Send, receive and delete on queues named per call, over one signed :class:`CmqClient`."""

    def __init__(self, api: CmqClient) -> None:
        self.api = api

    def send(self, queue: str, bodies: list[str], delay_s: float) -> list[str]:
        """Send ``bodies`` in as few calls as the batch limits allow; returns the server's msgIds in order.

        ``delay_s`` is rounded up to whole seconds (never earlier than asked).
        """
        ids: list[str] = []
        delay = math.ceil(delay_s)
        for chunk in chunks_by_size(bodies):
            if len(chunk) == 1:
                params: dict[str, object] = {"queueName": queue, "msgBody": chunk[0], "delaySeconds": delay}
                ids.append(str(field(self.api.call("SendMessage", params), "msgId")))
                continue
            params = {"queueName": queue, "delaySeconds": delay}
            params.update({f"msgBody.{n}": body for n, body in enumerate(chunk, start=1)})
            answer = self.api.call("BatchSendMessage", params)
            ids.extend(str(field(item, "msgId")) for item in field(answer, "msgList"))
        return ids

    def receive(self, queue: str, max_messages: int, polling_wait_s: int) -> list[dict[str, Any]]:
        """Up to ``max_messages`` raw messages (each hidden for the queue's VisibilityTimeout); [] when empty."""
        polling_wait_s = max(0, min(MAX_POLLING_WAIT_S, polling_wait_s))
        params = {"queueName": queue, "numOfMsg": max_messages, "pollingWaitSeconds": polling_wait_s}
        try:
            answer = self.api.call("BatchReceiveMessage", params, wait_s=polling_wait_s)
        except CmqApiError as exc:
            if exc.is_empty:
                return []
            raise
        return list(field(answer, "msgInfoList"))

    def delete(self, queue: str, receipt: str) -> bool:
        """Delete by receipt handle; False when the handle is stale (the server's error code says so)."""
        try:
            self.api.call("DeleteMessage", {"queueName": queue, "receiptHandle": receipt})
        except CmqApiError as exc:
            if exc.is_stale_receipt:
                return False
            raise
        return True

    def scan(self, queue: str, *, search_s: float = 0.0, max_items: int | None = None) -> Iterator[dict[str, Any]]:
        """Each distinct message of ``queue`` once, as received (so hidden); at most ``max_items``, asking for no
        more.

        Ends at the first batch with nothing new; with ``search_s > 0`` keeps long-polling until then, for
        messages a recent look hid. The caller stops early by leaving the loop.
        """
        seen: set[str] = set()
        deadline = time.monotonic() + search_s
        while max_items is None or len(seen) < max_items:
            want = BATCH_MAX_MESSAGES if max_items is None else min(BATCH_MAX_MESSAGES, max_items - len(seen))
            wait_s = math.ceil(deadline - time.monotonic()) if search_s > 0 else 0
            fresh = [item for item in self.receive(queue, want, wait_s) if item["msgId"] not in seen]
            for item in fresh:
                seen.add(item["msgId"])
                yield item
            if not fresh and (search_s <= 0 or time.monotonic() >= deadline):
                return

    def close(self) -> None:
        self.api.close()


def envelope(received: Received, reason: str, dead_at: float) -> str:
    """The dead-letter queue body of an explicit dead letter."""
    data = {
        "reason": reason,
        "message_id": received.message_id,
        "receive_count": received.receive_count,
        "dead_at": dead_at,
        "body": received.body,
    }
    return json.dumps(data, ensure_ascii=False)


def dead_letter_of(item: dict[str, Any], max_receive_count: int) -> DeadLetter:
    """A received dead-letter queue message: our envelope, or a raw body the server's policy moved there
    (reported as received ``max_receive_count`` times, assuming the queue's MaxReceiveCount equals it)."""
    body = str(field(item, "msgBody"))
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and set(data) == _ENVELOPE_KEYS:
        return DeadLetter(
            message_id=str(data["message_id"]),
            body=str(data["body"]),
            reason=str(data["reason"]),
            dead_at=float(data["dead_at"]),
            receive_count=int(data["receive_count"]),
        )
    return DeadLetter(
        message_id=str(field(item, "msgId")),
        body=body,
        reason=exceeded_reason(max_receive_count, max_receive_count),
        dead_at=float(item.get("enqueueTime", 0)),
        receive_count=max_receive_count,
    )


def received_of(item: dict[str, Any]) -> Received:
    """A received work-queue message; BackendUnavailable when the answer lacks a field."""
    try:
        return Received(
            message_id=str(item["msgId"]),
            body=str(item["msgBody"]),
            receipt=str(item["receiptHandle"]),
            receive_count=int(item["dequeueCount"]),
            enqueued_at=float(item["enqueueTime"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendUnavailable(f"CMQ receive: malformed message in the answer ({exc!r})") from None


def chunks_by_size(bodies: list[str]) -> Iterator[list[str]]:
    """Consecutive groups of at most 16 bodies and 64 KB (UTF-8) each; a larger single body goes alone."""
    chunk: list[str] = []
    size = 0
    for body in bodies:
        body_size = len(body.encode())
        if chunk and (len(chunk) == BATCH_MAX_MESSAGES or size + body_size > BATCH_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(body)
        size += body_size
    if chunk:
        yield chunk


def field(answer: Any, name: str) -> Any:
    """``answer[name]``; BackendUnavailable when it is missing (not a CMQ answer)."""
    try:
        return answer[name]
    except (KeyError, TypeError):
        raise BackendUnavailable(f"CMQ answer lacks {name!r}") from None
