"""The TDMQ-for-CMQ queue, data plane: the work-queue client over the CMQ HTTP API.

``cmq://<queue>?region=gz&dlq=<dead-letter queue>[&endpoint=http://host:port][&vpc=1]`` (the whole URL syntax:
:mod:`jobqueue.queue.cmq_config`). The operator plane, the dead-letter queue reader with control-plane
statistics, is :mod:`jobqueue.queue.cmq_dead_letters`.

How the data-plane contract of :mod:`jobqueue.queue.base` maps onto CMQ, and where CMQ differs:

* **Visibility is a queue attribute.** CMQ has no per-call visibility timeout: ``receive``'s
  ``visibility_timeout_s`` is ignored and the queue's ``VisibilityTimeout`` (set when the queue is created,
  see ``deploy/``) applies. Redelivery after that timeout, with ``receive_count`` one higher, holds.
* **No release.** The data plane has no action that changes a received message's visibility (only send,
  receive and delete), so :class:`CmqQueue` is not :class:`~jobqueue.queue.base.Releasable`: a message a
  stopping worker did not start comes back after the queue's VisibilityTimeout.
* **Long polls are whole seconds.** ``wait_s`` becomes ``pollingWaitSeconds`` rounded up (at most 30), so a
  short wait is never turned into none.
* **Delivery times are the server's.** Delays and visibility deadlines run on the service's clock; ``clock``
  only stamps an explicit dead letter's ``dead_at``.
* **Dead letters by policy.** The server moves a message to the DLQ after ``MaxReceiveCount`` receives
  (policy 0) with its original body. As a second line of defence, a received message whose ``dequeueCount``
  exceeds ``max_receive_count`` is dead-lettered here and not returned.
* **Explicit dead letters are not atomic**: the envelope (:mod:`jobqueue.queue.cmq_actions`) is sent to the
  DLQ, *then* the original is deleted. When the delete finds the receipt stale, the envelope is taken back
  from the DLQ (best effort) and ``dead_letter`` returns False; a crash in between leaves the message both
  live and dead (at-least-once, like everything else here).
* ``max_delay_s`` must stay below the queue's retention (default 43200 - 60); callers hop longer delays.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from jobqueue.errors import QueueConfigError
from jobqueue.queue.base import Clock, Queue, Received, exceeded_reason
from jobqueue.queue.cmq_actions import BATCH_MAX_MESSAGES, CmqActions, envelope, received_of
from jobqueue.queue.cmq_config import check_queue_name, default_endpoint, parse_cmq_url
from jobqueue.queue.cmq_http import CmqClient
from jobqueue.queue.cmq_signing import SignatureMethod
from relay_core import logs
from tencent_plumbing.credentials import CredentialsProvider, env_credentials

__all__ = ["CmqQueue", "check_queue_name", "default_endpoint"]

log = logs.get("jobqueue.cmq")

DEFAULT_MAX_DELAY_S = 43_200 - 60


class CmqQueue(Queue):
    """A CMQ work queue (and where its explicit dead letters go); the module docstring says where CMQ differs.

    ``credentials`` is called per request. ``client`` is an injected ``httpx.Client`` (not closed here).
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
        sign_method: SignatureMethod = SignatureMethod.HMAC_SHA256,
        request_timeout_s: float = 10.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(max_receive_count=max_receive_count)
        self.queue_name = check_queue_name(queue_name)
        self.dlq_name = check_queue_name(dlq_name, "dead-letter queue")
        if dlq_name == queue_name:
            raise QueueConfigError("RELAY_QUEUE: the CMQ dead-letter queue must differ from the work queue")
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._api = CmqClient(
            endpoint,
            credentials=credentials,
            http=client,
            sign_method=sign_method,
            timeout_s=request_timeout_s,
        )
        self._actions = CmqActions(self._api)

    @classmethod
    def from_url(cls, url: str, *, max_receive_count: int = 5, **options: Any) -> CmqQueue:
        """Build from ``cmq://<queue>?region=..&dlq=..``; ``options`` go to the constructor (credentials=...,
        client=..., clock=...). The operator-plane parameters of the URL are checked and not used here."""
        where = parse_cmq_url(url)
        return cls(
            where.queue_name, where.dlq_name, endpoint=where.endpoint, max_receive_count=max_receive_count, **options
        )

    def __repr__(self) -> str:
        return f"CmqQueue({self.queue_name!r}, dlq={self.dlq_name!r}, host={self._api.host!r})"

    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        return self._actions.send(self.queue_name, bodies, delay_s)

    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        """``visibility_timeout_s`` is ignored: the queue's VisibilityTimeout attribute applies."""
        received: list[Received] = []
        for item in self._actions.receive(self.queue_name, max_messages, math.ceil(wait_s)):
            message = received_of(item)
            if message.receive_count > self.max_receive_count:
                log.warning("cmq message %s received %d times", message.message_id, message.receive_count)
                self.dead_letter(message, exceeded_reason(message.receive_count - 1, self.max_receive_count))
                continue
            received.append(message)
        return received

    def delete(self, receipt: str) -> bool:
        return self._actions.delete(self.queue_name, receipt)

    def dead_letter(self, received: Received, reason: str) -> bool:
        """Send the envelope to the DLQ, then delete the original. If the receipt was stale, take the envelope
        back (best effort) and return False. Not atomic: see the module docstring."""
        if not reason:
            raise ValueError("a dead letter needs a reason")
        (dlq_msg_id,) = self._actions.send(self.dlq_name, [envelope(received, reason, self._clock())], 0)
        if self._actions.delete(self.queue_name, received.receipt):
            return True
        self._retract(dlq_msg_id, received.message_id)
        return False

    def close(self) -> None:
        self._actions.close()

    def _retract(self, dlq_msg_id: str, message_id: str) -> None:
        for item in self._actions.scan(self.dlq_name):
            if item["msgId"] == dlq_msg_id:
                self._actions.delete(self.dlq_name, item["receiptHandle"])
                return
        log.warning("cmq message %s: stale receipt, and its dead-letter copy could not be taken back", message_id)
