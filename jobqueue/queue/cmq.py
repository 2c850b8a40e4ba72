"""The TDMQ-for-CMQ queue backend, over the data-plane HTTP API (REFERENCE.md §2).

``cmq://<queue>?region=gz&dlq=<dead-letter queue>[&endpoint=http://host:port][&vpc=1][&dlq_search_s=2]``

How the contract of :mod:`jobqueue.queue.base` maps onto CMQ, and where CMQ differs:

* **Visibility is a queue attribute.** CMQ has no per-call visibility timeout: ``receive``'s
  ``visibility_timeout_s`` is ignored and the queue's ``VisibilityTimeout`` (set when the queue is created,
  see ``deploy/``) applies. Redelivery after that timeout, with ``receive_count`` one higher, holds.
* **Long polls are whole seconds.** ``wait_s`` becomes ``pollingWaitSeconds`` rounded up (at most 30), so a
  short wait is never turned into none.
* **Dead letters by policy.** The server moves a message to the DLQ after ``MaxReceiveCount`` receives
  (policy 0) with its original body; the adapter reports it with :func:`exceeded_reason` and
  ``receive_count = max_receive_count``, assuming the queue's MaxReceiveCount equals ``max_receive_count``.
  As a second line of defence, a received message whose ``dequeueCount`` exceeds ``max_receive_count`` is
  dead-lettered here and not returned.
* **Explicit dead letters** are a JSON envelope
  ``{"reason", "message_id", "receive_count", "dead_at", "body"}`` sent to the DLQ, *then* the original is
  deleted: not atomic. When the delete finds the receipt stale, the envelope is taken back from the DLQ
  (best effort) and ``dead_letter`` returns False; a crash in between leaves the message both live and dead
  (at-least-once, like everything else here).
* **Redrive makes a new message**: the original body is sent again, so it gets a new ``msgId``.
* **Inspecting the DLQ changes it.** CMQ can only look at a message by receiving it: ``dead_letters``,
  ``dead_letter_by_id``, ``redrive`` and ``remove_dead`` increment the ``dequeueCount`` of every DLQ message
  they look at and HIDE it for the DLQ's visibility timeout. Create the DLQ with a short
  ``VisibilityTimeout`` (a few seconds) and no dead-letter policy of its own. A listing right after another
  one sees only what is visible again; ``redrive(ids)``, ``remove_dead`` and ``dead_letter_by_id`` keep
  looking for up to ``dead_letter_search_s`` seconds (set it a little above the DLQ's visibility timeout)
  for named messages that a recent look hid.
* **A DLQ forgets.** Messages expire after the DLQ's ``MsgRetentionSeconds`` (at most 12 h) unless rewind
  is enabled on it.
* **No statistics on the data plane.** ``stats()`` uses the ``stats_provider`` given to the constructor (the
  control-plane helper, e.g. ``functools.partial(cmq_admin.queue_stats, target, queue, dlq)``), else
  raises NotImplementedError.
* ``max_delay_s`` must stay below the queue's retention (default 43200 - 60); callers hop longer delays.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.queue.base import DeadLetter, Queue, QueueStats, Received, exceeded_reason
from jobqueue.queue.cmq_config import CmqLocation, check_queue_name, default_endpoint, parse_cmq_url
from jobqueue.queue.cmq_http import CmqApiError, CmqClient
from jobqueue.queue.cmq_signing import SignatureMethod
from relay_core import logs
from tencent_plumbing.credentials import CredentialsProvider, env_credentials

__all__ = ["CmqQueue", "check_queue_name", "default_endpoint"]

log = logs.get("jobqueue.cmq")

BATCH_MAX_MESSAGES = 16
BATCH_MAX_BYTES = 64 * 1024
MAX_POLLING_WAIT_S = 30
DEFAULT_MAX_DELAY_S = 43_200 - 60
_ENVELOPE_KEYS = frozenset({"reason", "message_id", "receive_count", "dead_at", "body"})


class CmqQueue(Queue):
    """A CMQ work queue and its dead-letter queue; the module docstring says where CMQ differs.

    ``credentials`` is called per request. ``client`` is an injected ``httpx.Client`` (not closed here).
    ``clock`` only stamps ``dead_at``: delivery times are the server's.
    """

    max_batch = BATCH_MAX_MESSAGES

    def __init__(
        self,
        queue_name: str,
        dlq_name: str,
        *,
        endpoint: str,
        credentials: CredentialsProvider = env_credentials,
        client: httpx.Client | None = None,
        max_receive_count: int = 5,
        max_delay_s: int = DEFAULT_MAX_DELAY_S,
        stats_provider: Callable[[], QueueStats] | None = None,
        dead_letter_search_s: float = 0.0,
        sign_method: SignatureMethod = SignatureMethod.HMAC_SHA256,
        request_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_receive_count=max_receive_count)
        self.queue_name = check_queue_name(queue_name)
        self.dlq_name = check_queue_name(dlq_name, "dead-letter queue")
        if dlq_name == queue_name:
            raise QueueConfigError("RELAY_QUEUE: the CMQ dead-letter queue must differ from the work queue")
        self.max_delay_s = max_delay_s
        self.dead_letter_search_s = dead_letter_search_s
        self._stats_provider = stats_provider
        self._clock = clock
        self._api = CmqClient(
            endpoint,
            credentials=credentials,
            http=client,
            sign_method=sign_method,
            timeout_s=request_timeout_s,
        )

    @classmethod
    def from_url(cls, url: str, *, max_receive_count: int = 5, **options: Any) -> CmqQueue:
        """Build from ``cmq://<queue>?region=..&dlq=..``; ``options`` go to the constructor (credentials=...,
        client=..., stats_provider=...)."""
        where = parse_cmq_url(url)
        options.setdefault("dead_letter_search_s", where.dead_letter_search_s)
        if where.api_region and options.get("stats_provider") is None:
            options["stats_provider"] = _control_plane_stats(where, options.get("credentials", env_credentials))
        return cls(
            where.queue_name,
            where.dlq_name,
            endpoint=where.endpoint,
            max_receive_count=max_receive_count,
            **options,
        )

    def __repr__(self) -> str:
        return f"CmqQueue({self.queue_name!r}, dlq={self.dlq_name!r}, host={self._api.host!r})"

    # -- sending -----------------------------------------------------------------------------
    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        return self._send_to(self.queue_name, bodies, delay_s)

    def _send_to(self, queue: str, bodies: list[str], delay_s: float) -> list[str]:
        ids: list[str] = []
        delay = math.ceil(delay_s)  # never earlier than asked
        for chunk in _chunks_by_size(bodies):
            if len(chunk) == 1:
                params: dict[str, object] = {"queueName": queue, "msgBody": chunk[0], "delaySeconds": delay}
                ids.append(str(_field(self._api.call("SendMessage", params), "msgId")))
                continue
            params = {"queueName": queue, "delaySeconds": delay}
            params.update({f"msgBody.{n}": body for n, body in enumerate(chunk, start=1)})
            answer = self._api.call("BatchSendMessage", params)
            ids.extend(str(_field(item, "msgId")) for item in _field(answer, "msgList"))
        return ids

    # -- receiving ---------------------------------------------------------------------------
    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        """``visibility_timeout_s`` is ignored: the queue's VisibilityTimeout attribute applies."""
        received: list[Received] = []
        for item in self._receive_from(self.queue_name, max_messages, math.ceil(wait_s)):
            message = _received_of(item)
            if message.receive_count > self.max_receive_count:
                log.warning("cmq message %s received %d times", message.message_id, message.receive_count)
                self.dead_letter(message, exceeded_reason(message.receive_count - 1, self.max_receive_count))
                continue
            received.append(message)
        return received

    def _receive_from(self, queue: str, max_messages: int, polling_wait_s: int) -> list[dict[str, Any]]:
        polling_wait_s = max(0, min(MAX_POLLING_WAIT_S, polling_wait_s))
        params = {"queueName": queue, "numOfMsg": max_messages, "pollingWaitSeconds": polling_wait_s}
        try:
            answer = self._api.call("BatchReceiveMessage", params, wait_s=polling_wait_s)
        except CmqApiError as exc:
            if exc.is_empty:
                return []
            raise
        return list(_field(answer, "msgInfoList"))

    # -- finishing ---------------------------------------------------------------------------
    def delete(self, receipt: str) -> bool:
        return self._delete_from(self.queue_name, receipt)

    def _delete_from(self, queue: str, receipt: str) -> bool:
        try:
            self._api.call("DeleteMessage", {"queueName": queue, "receiptHandle": receipt})
        except CmqApiError as exc:
            if exc.is_stale_receipt:
                return False
            raise
        return True

    def dead_letter(self, received: Received, reason: str) -> bool:
        """Send the envelope to the DLQ, then delete the original. If the receipt was stale, take the envelope
        back (best effort) and return False."""
        envelope = {
            "reason": reason,
            "message_id": received.message_id,
            "receive_count": received.receive_count,
            "dead_at": self._clock(),
            "body": received.body,
        }
        (dlq_msg_id,) = self._send_to(self.dlq_name, [json.dumps(envelope, ensure_ascii=False)], 0)
        if self._delete_from(self.queue_name, received.receipt):
            return True
        self._retract(dlq_msg_id, received.message_id)
        return False

    def _retract(self, dlq_msg_id: str, message_id: str) -> None:
        for item in self._scan_dead():
            if item["msgId"] == dlq_msg_id:
                self._delete_from(self.dlq_name, item["receiptHandle"])
                return
        log.warning("cmq message %s: stale receipt, and its dead-letter copy could not be taken back", message_id)

    # -- the dead-letter queue ---------------------------------------------------------------
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters visible now, oldest first.

        This RECEIVES them: each one's dequeueCount goes up and it is hidden for the DLQ's visibility timeout.
        """
        if limit < 1:
            return []
        return [self._dead_letter_of(item) for item in self._scan_dead(max_items=limit)]

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        """Looks up to ``dead_letter_search_s`` for it; hides what it receives on the way."""
        item = self._find_dead(message_id)
        return None if item is None else self._dead_letter_of(item)

    def redrive(self, message_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        """Send each dead letter's original body back to the work queue (ready now, new msgId), then delete
        it from the DLQ. Returns the dead letters' ``message_id`` values, in the order moved."""
        if message_ids is None:
            return [self._redrive_one(item) for item in self._scan_dead(max_items=limit)]
        wanted = set(message_ids)
        moved: list[str] = []
        for item in self._scan_dead(search_s=self.dead_letter_search_s) if wanted else ():
            if self._dead_letter_of(item).message_id in wanted:
                moved.append(self._redrive_one(item))
                wanted.discard(moved[-1])
                if not wanted or (limit is not None and len(moved) >= limit):
                    break
        return moved

    def _redrive_one(self, item: dict[str, Any]) -> str:
        dead = self._dead_letter_of(item)
        self._send_to(self.queue_name, [dead.body], 0)
        if not self._delete_from(self.dlq_name, str(item["receiptHandle"])):
            log.warning("cmq dead letter %s redriven, but its DLQ receipt was stale: still dead", dead.message_id)
        return dead.message_id

    def remove_dead(self, message_id: str) -> bool:
        """Looks up to ``dead_letter_search_s`` for it, then deletes it from the DLQ."""
        item = self._find_dead(message_id)
        return item is not None and self._delete_from(self.dlq_name, str(item["receiptHandle"]))

    def stats(self) -> QueueStats:
        if self._stats_provider is None:
            raise NotImplementedError(
                "the CMQ data plane has no queue statistics: pass stats_provider= (the control-plane helper "
                "jobqueue.queue.cmq_admin.queue_stats, DescribeCmqQueueDetail)"
            )
        return self._stats_provider()

    def close(self) -> None:
        self._api.close()

    def _find_dead(self, message_id: str) -> dict[str, Any] | None:
        for item in self._scan_dead(search_s=self.dead_letter_search_s):
            if self._dead_letter_of(item).message_id == message_id:
                return item
        return None

    def _scan_dead(self, search_s: float = 0.0, max_items: int | None = None) -> Iterator[dict[str, Any]]:
        """Each distinct DLQ message once, as received (so hidden); at most ``max_items``, asking for no more.

        Ends at the first batch with nothing new; with ``search_s > 0`` keeps long-polling until then, for
        messages a recent look hid. The caller stops early by leaving the loop.
        """
        seen: set[str] = set()
        deadline = time.monotonic() + search_s
        while max_items is None or len(seen) < max_items:
            want = self.max_batch if max_items is None else min(self.max_batch, max_items - len(seen))
            wait_s = math.ceil(deadline - time.monotonic()) if search_s > 0 else 0
            fresh = [item for item in self._receive_from(self.dlq_name, want, wait_s) if item["msgId"] not in seen]
            for item in fresh:
                seen.add(item["msgId"])
                yield item
            if not fresh and (search_s <= 0 or time.monotonic() >= deadline):
                return

    def _dead_letter_of(self, item: dict[str, Any]) -> DeadLetter:
        """Our envelope, or a raw body the server's policy moved (see the module docstring)."""
        body = str(_field(item, "msgBody"))
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and set(envelope) == _ENVELOPE_KEYS:
            return DeadLetter(
                message_id=str(envelope["message_id"]),
                body=str(envelope["body"]),
                reason=str(envelope["reason"]),
                dead_at=float(envelope["dead_at"]),
                receive_count=int(envelope["receive_count"]),
            )
        return DeadLetter(
            message_id=str(_field(item, "msgId")),
            body=body,
            reason=exceeded_reason(self.max_receive_count, self.max_receive_count),
            dead_at=float(item.get("enqueueTime", 0)),
            receive_count=self.max_receive_count,
        )


def _chunks_by_size(bodies: list[str]) -> Iterator[list[str]]:
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


def _received_of(item: dict[str, Any]) -> Received:
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


def _field(answer: Any, name: str) -> Any:
    try:
        return answer[name]
    except (KeyError, TypeError):
        raise BackendUnavailable(f"CMQ answer lacks {name!r}") from None


def _control_plane_stats(where: CmqLocation, credentials: CredentialsProvider) -> Callable[[], QueueStats]:
    """Statistics through ``DescribeCmqQueueDetail``; the SDK is imported on the first call, not before."""

    def stats() -> QueueStats:
        from jobqueue.queue.cmq_admin import queue_stats
        from tencent_plumbing.api3 import ApiTarget

        target = ApiTarget(where.api_region or "", credentials, where.api_endpoint)
        return queue_stats(target, where.queue_name, where.dlq_name)

    return stats
