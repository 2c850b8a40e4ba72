"""Fault injection around a real queue: duplicate every send, or 'crash' before some deletes.

These wrap a real backend (no mocks): every call still goes to SQLite/Redis; the wrapper only changes how often.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue.queue.base import DeadLetter, Queue, QueueStats, Received


class QueueProxy(Queue):
    def __init__(self, inner: Queue) -> None:
        super().__init__(max_receive_count=inner.max_receive_count)
        self.inner = inner
        self.max_batch = inner.max_batch
        self.max_delay_s = inner.max_delay_s

    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        return self.inner.send_batch(bodies, delay_s)

    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        return self.inner.receive(max_messages, visibility_timeout_s, wait_s)

    def delete(self, receipt: str) -> bool:
        return self.inner.delete(receipt)

    def dead_letter(self, received: Received, reason: str) -> bool:
        return self.inner.dead_letter(received, reason)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self.inner.dead_letters(limit)

    def redrive(self, message_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        return self.inner.redrive(message_ids, limit)

    def remove_dead(self, message_id: str) -> bool:
        return self.inner.remove_dead(message_id)

    def stats(self) -> QueueStats:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


class DuplicatingQueue(QueueProxy):
    """Every message is sent twice: the duplicate delivery every at-least-once queue may make."""

    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        ids = self.inner.send_batch(bodies, delay_s)
        self.inner.send_batch(bodies, delay_s)
        return ids


class CrashBeforeDeleteQueue(QueueProxy):
    """The first delete of every message is lost, as if the function died after sending the successor."""

    def __init__(self, inner: Queue) -> None:
        super().__init__(inner)
        self.seen: set[str] = set()
        self.lost_deletes = 0

    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        batch = self.inner.receive(max_messages, visibility_timeout_s, wait_s)
        self._ids = {r.receipt: r.message_id for r in batch}
        return batch

    def delete(self, receipt: str) -> bool:
        message_id = self._ids.get(receipt, receipt)
        if message_id not in self.seen:
            self.seen.add(message_id)
            self.lost_deletes += 1
            return False
        return self.inner.delete(receipt)
