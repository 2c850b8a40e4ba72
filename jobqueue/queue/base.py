"""The Queue protocol: at-least-once delivery with delays, visibility timeouts and a dead-letter store.

Contract every backend keeps (``tests/contract/test_queue_contract.py`` checks each one):

* ``send(body, delay_s)`` makes the body receivable no earlier than ``delay_s`` seconds from now.
  ``delay_s`` must be within ``0 <= delay_s <= max_delay_s``; longer waits are the caller's hops
  (the consumer sets ``JobMessage.not_before`` and re-sends).
* ``receive(n, visibility_timeout_s)`` returns up to ``min(n, max_batch)`` ready messages and hides each
  for ``visibility_timeout_s``; one that is not deleted in time becomes receivable again with
  ``receive_count`` one higher. A message that would be received more than ``max_receive_count`` times
  is moved to the dead-letter store instead, with a reason saying so.
* ``delete(receipt)`` removes the message only if ``receipt`` is from its latest receive (a late delete by a
  worker whose visibility expired must not delete the copy another worker now holds). Returns whether it did.
* ``release(receipt)`` makes a received message receivable again at once, without counting that receive (a
  worker stopping before it started the message); a backend that cannot (CMQ) returns False and the message
  comes back after its visibility timeout as usual.
* ``dead_letter(received, reason)`` moves the message (same id and body) to the dead-letter store with the
  reason, atomically, if the receipt is still current.
* ``dead_letters()`` lists the dead-letter store without changing it; ``redrive(ids)`` sends dead letters back
  to the queue (ready now, receive count reset) and removes them from the store; ``remove_dead(id)`` drops one.
* Every state change is atomic; messages survive the death of the process that received them.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Received:
    message_id: str
    body: str
    receipt: str
    receive_count: int
    enqueued_at: float


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    dead_at: float
    receive_count: int


@dataclass(frozen=True)
class QueueStats:
    ready: int
    delayed: int
    in_flight: int
    dead: int

    @property
    def pending(self) -> int:
        """Messages not yet finished (ready + delayed + in flight)."""
        return self.ready + self.delayed + self.in_flight


class Queue(abc.ABC):
    """Base of every queue backend. Subclasses implement the abstract primitives only."""

    #: most messages one send_batch / receive call moves
    max_batch: int = 16
    #: longest delay one send accepts
    max_delay_s: int = 43_200

    def __init__(self, *, max_receive_count: int = 5) -> None:
        if max_receive_count < 1:
            raise ValueError("max_receive_count must be >= 1")
        self.max_receive_count = max_receive_count

    # -- the protocol ------------------------------------------------------------------------
    def send(self, body: str, delay_s: float = 0) -> str:
        """Enqueue one body; returns its message id."""
        return self.send_batch([body], delay_s)[0]

    def send_batch(self, bodies: Sequence[str], delay_s: float = 0) -> list[str]:
        """Enqueue bodies with one delay, in chunks of ``max_batch``; returns their ids in order."""
        self._check_delay(delay_s)
        ids: list[str] = []
        for start in range(0, len(bodies), self.max_batch):
            ids.extend(self._send_many(list(bodies[start : start + self.max_batch]), float(delay_s)))
        return ids

    def receive(self, max_messages: int = 1, visibility_timeout_s: float = 30, wait_s: float = 0) -> list[Received]:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if visibility_timeout_s <= 0:
            raise ValueError("visibility_timeout_s must be > 0")
        return self._receive(min(max_messages, self.max_batch), float(visibility_timeout_s), float(wait_s))

    @abc.abstractmethod
    def delete(self, receipt: str) -> bool: ...

    def release(self, receipt: str) -> bool:
        """Give a received, unstarted message back now; the default cannot (see the module docstring)."""
        return False

    @abc.abstractmethod
    def dead_letter(self, received: Received, reason: str) -> bool: ...

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def redrive(self, message_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        """Move the named dead letters (all, oldest first, up to ``limit``, when ``None``) back; returns ids."""

    @abc.abstractmethod
    def remove_dead(self, message_id: str) -> bool: ...

    @abc.abstractmethod
    def stats(self) -> QueueStats: ...

    def close(self) -> None:
        """Release connections; the default has none."""

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        """One dead letter by id (a linear look through ``dead_letters``; backends may do better)."""
        return next((d for d in self.dead_letters(limit=100_000) if d.message_id == message_id), None)

    # -- primitives --------------------------------------------------------------------------
    @abc.abstractmethod
    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]: ...

    @abc.abstractmethod
    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]: ...

    def _check_delay(self, delay_s: float) -> None:
        if delay_s < 0 or delay_s > self.max_delay_s:
            raise ValueError(f"delay_s={delay_s} outside 0..{self.max_delay_s}")

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exceeded_reason(receive_count: int, max_receive_count: int) -> str:
    """The dead-letter reason for a message that kept coming back (one wording for every backend)."""
    return (
        f"received {receive_count} times without being deleted (max_receive_count={max_receive_count}): "
        "a worker crashed or timed out on it every time"
    )
