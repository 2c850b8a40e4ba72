"""The queues behind the local CMQ data-plane server: CMQ's documented queue semantics, in memory.

Per queue: delay, a visibility timeout hiding each received message, ``dequeueCount``, a fresh receipt handle
per receive (only the latest one deletes), retention (a message not deleted within ``retention_s`` of its
enqueue is dropped), the dead-letter policy 0 (a message that would be received more than
``max_receive_count`` times moves to the DLQ instead, same msgId and body, count reset), the message size
limit, and the batch limits (16 messages, 64 KB). Long polls wait for real, at most ``max_real_wait_s``.
``pull_lag_s`` delays every sent message's first visibility (the delivery delay a receive may meet).

Times come from a clock: :class:`Clock` (real time plus an offset a test can advance) or any callable
returning unix seconds (the contract suite's fake clock). Error codes follow the legacy
CMQ documentation; which number TDMQ answers for each case is (unconfirmed), the adapter accepts the wording.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

INVALID_PARAMETER = 4000
MESSAGE_TOO_LARGE = 4400
STALE_RECEIPT = 4430
QUEUE_MISSING = 4440
NO_MESSAGE = 7000

BATCH_MAX_MESSAGES = 16
BATCH_MAX_BYTES = 64 * 1024
MAX_POLLING_WAIT_S = 30
_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_POLL_STEP_S = 0.05


class CmqFault(Exception):
    """A non-zero CMQ ``code`` with its ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Clock:
    """Wall time plus ``offset_s``; :meth:`advance` moves every queue's notion of now forward."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


@dataclass(frozen=True)
class QueueSpec:
    """Queue attributes, with CMQ's ranges checked by :meth:`validate`."""

    name: str
    visibility_timeout_s: int = 30
    max_msg_size_bytes: int = 65_536
    retention_s: int = 43_200
    dlq: str | None = None
    max_receive_count: int = 5
    delay_s: int = 0
    polling_wait_s: int = 0

    def validate(self) -> None:
        if not _QUEUE_NAME.fullmatch(self.name) or self.name.endswith(("-retry", "-dlq")):
            raise ValueError(f"invalid CMQ queue name {self.name!r}")
        checks = {
            "visibility_timeout_s": (self.visibility_timeout_s, 1, 43_200),
            "max_msg_size_bytes": (self.max_msg_size_bytes, 1024, 1_048_576),
            "retention_s": (self.retention_s, 30, 43_200),
            "max_receive_count": (self.max_receive_count, 1, 1000),
            "delay_s": (self.delay_s, 0, self.retention_s - 1),
            "polling_wait_s": (self.polling_wait_s, 0, MAX_POLLING_WAIT_S),
        }
        for name, (value, low, high) in checks.items():
            if not low <= value <= high:
                raise ValueError(f"{name}={value} outside {low}..{high}")


@dataclass
class StoredMessage:
    msg_id: str
    body: str
    enqueue_time: float
    visible_at: float
    expires_at: float
    dequeue_count: int = 0
    first_dequeue_time: float = 0.0
    receipt: str | None = None

    def as_received(self) -> dict[str, Any]:
        """The fields of a received message, as CMQ names them."""
        return {
            "msgId": self.msg_id,
            "msgBody": self.body,
            "receiptHandle": self.receipt,
            "enqueueTime": int(self.enqueue_time),
            "firstDequeueTime": int(self.first_dequeue_time),
            "nextVisibleTime": int(self.visible_at),
            "dequeueCount": self.dequeue_count,
        }


class CmqBroker:
    """Thread-safe queues; every method raises :class:`CmqFault` where CMQ answers a non-zero code."""

    def __init__(self, clock: Callable[[], float], max_real_wait_s: float = 1.0) -> None:
        self.clock = clock
        self.max_real_wait_s = max_real_wait_s
        #: seconds a sent message stays unreceivable (on top of its delay): Tencent documents pull delays with
        #: few messages in the queue, so an empty receive does not prove an empty queue
        self.pull_lag_s = 0.0
        self._specs: dict[str, QueueSpec] = {}
        self._messages: dict[str, dict[str, StoredMessage]] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    def create_queue(self, spec: QueueSpec) -> None:
        """Create ``spec.name``, or change the attributes of an existing queue (its messages stay)."""
        spec.validate()
        with self._changed:
            if spec.dlq is not None and spec.dlq not in self._specs:
                raise ValueError(f"dead-letter queue {spec.dlq!r} does not exist: create it first")
            self._specs[spec.name] = spec
            self._messages.setdefault(spec.name, {})

    def send(self, queue: str, bodies: Sequence[str], delay_s: int | None) -> list[str]:
        spec = self._spec(queue)
        delay_s = spec.delay_s if delay_s is None else delay_s
        self._check_send(spec, bodies, delay_s)
        with self._changed:
            now = self.clock()
            ids = [self._store(queue, body, now, now + delay_s + self.pull_lag_s) for body in bodies]
            self._changed.notify_all()
        return ids

    def receive(self, queue: str, max_messages: int, polling_wait_s: int | None) -> list[dict[str, Any]]:
        spec = self._spec(queue)
        polling_wait_s = spec.polling_wait_s if polling_wait_s is None else polling_wait_s
        if not 1 <= max_messages <= BATCH_MAX_MESSAGES:
            raise CmqFault(INVALID_PARAMETER, f"numOfMsg={max_messages} outside 1..{BATCH_MAX_MESSAGES}")
        if not 0 <= polling_wait_s <= MAX_POLLING_WAIT_S:
            raise CmqFault(INVALID_PARAMETER, f"pollingWaitSeconds={polling_wait_s} outside 0..30")
        deadline = time.monotonic() + min(polling_wait_s, self.max_real_wait_s)
        with self._changed:
            while True:
                taken = self._take(spec, max_messages)
                remaining_s = deadline - time.monotonic()
                if taken or remaining_s <= 0:
                    break
                self._changed.wait(min(_POLL_STEP_S, remaining_s))
        if not taken:
            raise CmqFault(NO_MESSAGE, "(10200)no message")
        return taken

    def delete(self, queue: str, receipt: str) -> None:
        self._spec(queue)
        with self._changed:
            messages = self._messages[queue]
            match = next((m for m in messages.values() if receipt and m.receipt == receipt), None)
            if match is None:
                raise CmqFault(STALE_RECEIPT, "(10180)receiptHandle is invalid or expired")
            del messages[match.msg_id]

    def snapshot(self, queue: str) -> list[dict[str, Any]]:
        """Every stored message of ``queue`` (test inspection; changes nothing)."""
        with self._changed:
            self._expire(queue)
            now = self.clock()
            return [{**m.as_received(), "visible": m.visible_at <= now} for m in self._messages[queue].values()]

    def counts(self, queue: str) -> dict[str, int]:
        """What the control plane reports: ``ready`` (visible), ``delayed`` (never received, not yet visible),
        ``in_flight`` (received, hidden)."""
        counts = {"ready": 0, "delayed": 0, "in_flight": 0}
        with self._changed:
            self._spec(queue)
            self._expire(queue)
            now = self.clock()
            for m in self._messages[queue].values():
                state = "ready" if m.visible_at <= now else "in_flight" if m.dequeue_count else "delayed"
                counts[state] += 1
        return counts

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- internals (callers hold the lock where it matters) ----------------------------------
    def _spec(self, queue: str) -> QueueSpec:
        try:
            return self._specs[queue]
        except KeyError:
            raise CmqFault(QUEUE_MISSING, f"(10440)queue {queue!r} does not exist") from None

    def _check_send(self, spec: QueueSpec, bodies: Sequence[str], delay_s: int) -> None:
        if not 1 <= len(bodies) <= BATCH_MAX_MESSAGES:
            raise CmqFault(INVALID_PARAMETER, f"a batch holds 1..{BATCH_MAX_MESSAGES} messages, got {len(bodies)}")
        if not 0 <= delay_s < spec.retention_s:
            raise CmqFault(INVALID_PARAMETER, f"delaySeconds={delay_s} must be 0..{spec.retention_s - 1}")
        sizes = [len(body.encode()) for body in bodies]
        if max(sizes) > spec.max_msg_size_bytes:
            raise CmqFault(MESSAGE_TOO_LARGE, f"message larger than MaxMsgSize={spec.max_msg_size_bytes}")
        if len(bodies) > 1 and sum(sizes) > BATCH_MAX_BYTES:
            raise CmqFault(INVALID_PARAMETER, f"batch of {sum(sizes)} bytes is over {BATCH_MAX_BYTES}")

    def _store(self, queue: str, body: str, enqueue_time: float, visible_at: float, msg_id: str = "") -> str:
        msg_id = msg_id or f"{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        expires_at = enqueue_time + self._specs[queue].retention_s
        self._messages[queue][msg_id] = StoredMessage(msg_id, body, enqueue_time, visible_at, expires_at)
        return msg_id

    def _expire(self, queue: str) -> None:
        now = self.clock()
        messages = self._messages[queue]
        for msg_id in [m.msg_id for m in messages.values() if m.expires_at <= now]:
            del messages[msg_id]

    def _take(self, spec: QueueSpec, max_messages: int) -> list[dict[str, Any]]:
        """Receive up to ``max_messages`` visible messages, applying the dead-letter policy on the way."""
        self._expire(spec.name)
        now = self.clock()
        taken: list[dict[str, Any]] = []
        for message in list(self._messages[spec.name].values()):
            if len(taken) == max_messages:
                break
            if message.visible_at > now:
                continue
            if spec.dlq is not None and message.dequeue_count + 1 > spec.max_receive_count:
                del self._messages[spec.name][message.msg_id]
                self._store(spec.dlq, message.body, now, now, msg_id=message.msg_id)
                continue
            message.dequeue_count += 1
            message.first_dequeue_time = message.first_dequeue_time or now
            message.visible_at = now + spec.visibility_timeout_s
            message.receipt = uuid.uuid4().hex
            taken.append(message.as_received())
        return taken
