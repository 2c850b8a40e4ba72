"""The queue in two planes: the data plane every consumer uses, and the operator plane for dead letters and counts.

Data plane, :class:`Queue` (``tests/contract/test_queue_contract.py`` checks every backend):

* ``send(body, delay_s)`` makes the body receivable no earlier than ``delay_s`` seconds from now.
  ``delay_s`` must be within ``0 <= delay_s <= max_delay_s``; longer waits are the caller's hops
  (the consumer sets ``JobMessage.not_before`` and re-sends).
* ``receive(n, visibility_timeout_s)`` returns up to ``min(n, max_batch)`` ready messages and hides each
  for ``visibility_timeout_s``; one that is not deleted in time becomes receivable again with
  ``receive_count`` one higher. A message that would be received more than ``max_receive_count`` times
  is moved to the dead-letter store instead, with a reason saying so.
* ``delete(receipt)`` removes the message only if ``receipt`` is from its latest receive (a late delete by a
  worker whose visibility expired must not delete the copy another worker now holds). Returns whether it did.
* ``dead_letter(received, reason)`` moves the message (same id and body) to the dead-letter store with the
  reason, if the receipt is still current.
* Every state change is atomic, except where a backend documents otherwise (CMQ's explicit dead letter);
  messages survive the death of the process that received them.

Capabilities are declared by type, never discovered by an exception:

* :class:`Releasable`: a data plane that can give a received, unstarted message back at once
  (``release(receipt)``), without counting that receive. A queue that is not Releasable (CMQ) lets such a
  message come back after its visibility timeout, as after any crash.
* :class:`StatsSource`: something that counts the queue's messages by state (``stats()``).
* :class:`Peekable`: an operator plane that can show the next messages without receiving them (``peek(limit)``;
  SQLite and Redis). CMQ can only look by receiving, so its admin is not Peekable.

Operator plane, :class:`QueueAdmin` (a :class:`DeadLetterStore` plus, where the backend has them, a
:class:`StatsSource` from ``stats_source()``):

* ``dead_letters()`` lists the dead-letter store, oldest first; ``dead_letter_by_id(id)`` finds one;
  ``redrive(ids)`` sends dead letters back to the queue (ready now, receive count reset) and removes them
  from the store; ``remove_dead(id)`` drops one. SQLite and Redis change nothing by looking and move each
  letter atomically; CMQ can only look by receiving, and redrives by sending anew, then deleting (see
  :mod:`jobqueue.queue.cmq_dead_letters`).

Time: SQLite and Redis take every delay, visibility deadline and timestamp from the ``clock`` they are given
(default :func:`time.time`), so tests can run them in virtual time; CMQ delivers on the service's clock.

``jobqueue.open_queue(url)`` opens the data plane, ``jobqueue.open_queue_admin(url)`` the operator plane.
SQLite and Redis implement both on one class; CMQ splits them (the work-queue client, and the dead-letter
queue reader with control-plane statistics).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

#: unix seconds now; queues take one so tests can run them in virtual time
Clock = Callable[[], float]

_Self = TypeVar("_Self", bound="Closable")


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
class Peeked:
    """A message seen by :meth:`Peekable.peek`: ``state`` is ``"ready"`` or ``"delayed"``; ``visible_at`` is when it
    becomes (or became) receivable, None where the backend does not keep it (Redis's ready list)."""

    message_id: str
    body: str
    state: str
    visible_at: float | None
    receive_count: int
    enqueued_at: float


@dataclass(frozen=True)
class QueueStats:
    ready: int
    delayed: int
    in_flight: int
    dead: int
    #: enqueue time of the oldest ready or delayed message where the backend can tell cheaply, else None
    #: (SQLite: exact; Redis: the next on the ready list or next delayed; CMQ: None). Not part of equality,
    #: which compares the counts.
    oldest_enqueued_at: float | None = field(default=None, compare=False)

    @property
    def pending(self) -> int:
        """Messages not yet finished (ready + delayed + in flight)."""
        return self.ready + self.delayed + self.in_flight


class Closable:
    """Holds connections until :meth:`close`; a context manager that closes on exit."""

    def close(self) -> None:
        """Release connections (idempotent); the default has none."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Queue(Closable, abc.ABC):
    """The data plane. Subclasses implement ``_send_many``, ``_receive``, ``delete`` and ``dead_letter``."""

    #: most messages one send_batch chunk / receive call moves
    max_batch: int = 16
    #: longest delay one send accepts
    max_delay_s: int = 43_200

    def __init__(self, *, max_receive_count: int = 5) -> None:
        if max_receive_count < 1:
            raise ValueError("max_receive_count must be >= 1")
        self.max_receive_count = max_receive_count

    def send(self, body: str, delay_s: float = 0) -> str:
        """Enqueue one body, receivable no earlier than ``delay_s`` from now; returns its message id.

        Raises ValueError for a delay outside ``0..max_delay_s`` (nothing is sent), QueueError subclasses
        when the backend fails (BackendUnavailable: try again).
        """
        return self.send_batch([body], delay_s)[0]

    def send_batch(self, bodies: Sequence[str], delay_s: float = 0) -> list[str]:
        """Enqueue bodies with one delay; returns their ids in order.

        Each chunk of ``max_batch`` is one atomic send; a failure part-way leaves the earlier chunks sent (the
        caller retries the batch: delivery is at-least-once anyway). Raises as :meth:`send`.
        """
        self._check_delay(delay_s)
        ids: list[str] = []
        for start in range(0, len(bodies), self.max_batch):
            ids.extend(self._send_many(list(bodies[start : start + self.max_batch]), float(delay_s)))
        return ids

    def receive(self, max_messages: int = 1, visibility_timeout_s: float = 30, wait_s: float = 0) -> list[Received]:
        """Up to ``min(max_messages, max_batch)`` ready messages, each hidden for ``visibility_timeout_s``.

        Waits up to ``wait_s`` seconds (real time) for the first one; returns ``[]`` if none came. Each message is
        handed to one receiver at a time (the receive is atomic). Raises ValueError for ``max_messages < 1`` or
        ``visibility_timeout_s <= 0``, BackendUnavailable when the backend fails.
        """
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if visibility_timeout_s <= 0:
            raise ValueError("visibility_timeout_s must be > 0")
        return self._receive(min(max_messages, self.max_batch), float(visibility_timeout_s), float(wait_s))

    @abc.abstractmethod
    def delete(self, receipt: str) -> bool:
        """Remove the message if ``receipt`` is from its latest receive; returns whether it did (atomic).

        False for a stale or unknown receipt: the message stays for whoever holds the current one.
        """

    @abc.abstractmethod
    def dead_letter(self, received: Received, reason: str) -> bool:
        """Move the message to the dead-letter store with ``reason`` if ``received.receipt`` is still current.

        Returns False (nothing moved) for a stale receipt. Raises ValueError for an empty reason. Atomic
        except where a backend documents otherwise (CMQ).
        """

    # -- primitives --------------------------------------------------------------------------
    @abc.abstractmethod
    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        """Enqueue at most ``max_batch`` bodies atomically, ``delay_s`` already checked; returns their ids."""

    @abc.abstractmethod
    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        """:meth:`receive` with the arguments checked and ``max_messages`` capped."""

    def _check_delay(self, delay_s: float) -> None:
        if delay_s < 0 or delay_s > self.max_delay_s:
            raise ValueError(f"delay_s={delay_s} outside 0..{self.max_delay_s}")


class Releasable(abc.ABC):
    """Capability of a data plane: give a received message back at once (SQLite, Redis; not CMQ)."""

    @abc.abstractmethod
    def release(self, receipt: str) -> bool:
        """Make the message of ``receipt`` receivable again now, without counting that receive (a worker stopping
        before it started the message). Atomic. Returns False, changing nothing, when the receipt is stale or
        the message is no longer in flight. Raises BackendUnavailable when the backend fails."""


class StatsSource(abc.ABC):
    """Counts of one queue's messages by state."""

    @abc.abstractmethod
    def stats(self) -> QueueStats:
        """Ready, delayed, in-flight and dead messages now. A consistent snapshot on SQLite and Redis; the
        service's own, periodically refreshed counts on CMQ (not exact). Raises a QueueError when the backend
        fails."""


class Peekable(abc.ABC):
    """Capability of an operator plane: look at the next messages without receiving them."""

    @abc.abstractmethod
    def peek(self, limit: int = 5) -> list[Peeked]:
        """Up to ``limit`` live messages that are not in flight, in the order a receive would take them: ready
        ones first, then delayed ones by the time they become ready.

        Read-only: no message is hidden, moved or counted (a receive afterwards gets the same message with the
        same receive count). Raises ValueError for ``limit < 1``, BackendUnavailable when the backend fails.
        """


class DeadLetterStore(Closable, abc.ABC):
    """The dead letters of one queue. Subclasses implement ``_list_dead``, ``_redrive_ids``,
    ``_redrive_oldest`` and ``remove_dead``; the argument checks are here."""

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first. Raises ValueError for ``limit < 0``.

        Changes nothing on SQLite and Redis; on CMQ looking is receiving (see that backend).
        """
        if limit < 0:
            raise ValueError("limit must be >= 0")
        return self._list_dead(limit) if limit else []

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        """The dead letter with ``message_id``, or None. The default looks through :meth:`dead_letters`."""
        return next((d for d in self._list_dead(100_000) if d.message_id == message_id), None)

    def redrive(self, message_ids: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
        """Send dead letters back to the queue, ready now with the receive count reset, and remove them from the
        store; returns the ids moved, in the order moved.

        ``message_ids``: those (each once, in the order given; unknown ids are skipped). ``None``: every dead
        letter, oldest first, at most ``limit``. Each letter moves atomically on SQLite and Redis (it keeps its
        id); CMQ sends a new message, then deletes the letter. Raises ValueError for ``limit < 0`` or for a
        ``limit`` with named ids.
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        if message_ids is None:
            return self._redrive_oldest(limit) if limit != 0 else []
        if limit is not None:
            raise ValueError("limit applies to redriving every dead letter, not to named ids")
        ids = list(dict.fromkeys(message_ids))
        return self._redrive_ids(ids) if ids else []

    @abc.abstractmethod
    def remove_dead(self, message_id: str) -> bool:
        """Drop one dead letter for good; returns whether there was one with that id (atomic)."""

    # -- primitives --------------------------------------------------------------------------
    @abc.abstractmethod
    def _list_dead(self, limit: int) -> list[DeadLetter]:
        """:meth:`dead_letters` with ``limit >= 1``."""

    @abc.abstractmethod
    def _redrive_ids(self, message_ids: list[str]) -> list[str]:
        """:meth:`redrive` of named, distinct ids (at least one)."""

    @abc.abstractmethod
    def _redrive_oldest(self, limit: int | None) -> list[str]:
        """:meth:`redrive` of every dead letter, oldest first, at most ``limit`` (``>= 1``; None: all)."""


class QueueAdmin(DeadLetterStore):
    """The operator plane of one queue: its dead letters, and its statistics where the backend has them."""

    @abc.abstractmethod
    def stats_source(self) -> StatsSource | None:
        """The queue's counts, or None when this backend cannot count (CMQ without the control plane)."""


def exceeded_reason(receive_count: int, max_receive_count: int) -> str:
    """The dead-letter reason for a message that kept coming back (one wording for every backend)."""
    return (
        f"received {receive_count} times without being deleted (max_receive_count={max_receive_count}): "
        "a worker crashed or timed out on it every time"
    )
