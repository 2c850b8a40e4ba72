"""The ``wait_s`` of a queue whose server can block: one thread per queue object sleeps on the server, the rest here.

A receiver that found nothing blocks on the server's wake signal (Redis: ``BZPOPMIN`` on the queue's wake flag)
until a message may be receivable: the flag is set by whatever makes one ready sooner than a sleeper expects, and
the block never outlasts the earliest time a delayed or in-flight message becomes receivable (``next_due``, learnt
from the last empty receive; a waiter that learnt an earlier one than the listener's wakes for it itself), so
delayed messages are taken on time. Only one thread of a process is on the
server at a time (the listener); the others wait on a condition without a command, and one of them takes over
the listening when the listener leaves. An idle worker therefore costs about one blocking command per
``wait_s`` and one receive per :data:`SAFETY_S`, whatever its thread count.

The safety receive covers a flag that was taken by a process which died before receiving: the messages it
announced are then picked up within :data:`SAFETY_S` instead of at the next due time.

Waiting is measured on the monotonic clock; ``next_due`` is on the queue's clock (``clock``), which may be
virtual in tests: a wait never outlasts ``wait_s`` of real time either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: longest single block on the server (below redis-py's socket timeout of our clients, 10 s)
MAX_BLOCK_S = 5.0
#: a listener receives at least this often while idle, even without a signal
SAFETY_S = 5.0
#: shorter timeouts are not worth a blocking command: receive again at once
MIN_BLOCK_S = 0.005

#: one receive: the messages, and when none, the earliest time (queue clock) one becomes receivable or None
Attempt = Callable[[], tuple[list[T], float | None]]
#: block on the server up to the given seconds; True when the wake signal came
Block = Callable[[float], bool]


class WakeGate(Generic[T]):
    """Coordinates the receivers of one queue object (thread-safe); see the module docstring."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._listening = False
        self._next_due: float | None = None
        self._last_attempt = float("-inf")  # monotonic time of the last receive of any thread
        self._found_empty = False  # the last receive found nothing, and no signal came since

    def receive(self, attempt: Attempt[T], block: Block, wait_s: float) -> list[T]:
        """Messages from ``attempt`` within ``wait_s`` seconds, sleeping on ``block`` in between; ``[]`` if none.

        Receives at once unless nothing can have changed since the last receive of any thread found the queue
        empty (no signal came, nothing fell due, the safety interval has not passed: a signal set meanwhile stays
        on the server for the next block), then waits: as the listener, or on the others' condition.
        """
        deadline = time.monotonic() + wait_s
        if wait_s <= 0 or self._may_have_changed():
            found = self._attempt(attempt)
            if found or wait_s <= 0:
                return found
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with self._changed:
                listen = not self._listening
                if listen:
                    self._listening = True
                    timeout = self._timeout(remaining)
                else:  # the listener may sleep past a due time learnt since it blocked: wake for that here
                    self._changed.wait(self._timeout(remaining))
                    look = self._claim_timed_receive()
            if listen:
                signalled = False
                try:
                    signalled = block(timeout) if timeout >= MIN_BLOCK_S else False
                finally:
                    with self._changed:
                        self._listening = False
                        self._found_empty = self._found_empty and not signalled
                        look = signalled or self._claim_timed_receive()
                        self._changed.notify()
            if look:
                found = self._attempt(attempt)
                if found:
                    return found

    def _may_have_changed(self) -> bool:
        """Whether a receive could find something the last empty one did not."""
        with self._changed:
            return not self._found_empty or self._claim_timed_receive()

    def _claim_timed_receive(self) -> bool:
        """True for the first thread to see the due time or the safety interval pass since the last receive: it
        receives, the others need not. Call with the condition held."""
        now = time.monotonic()
        due = self._next_due is not None and self._clock() >= self._next_due
        if not due and now - self._last_attempt < SAFETY_S:
            return False
        self._last_attempt, self._next_due = now, None
        return True

    def _timeout(self, remaining: float) -> float:
        """How long the listener may block: until the caller's deadline, the due time, the safety receive or the
        cap, whichever comes first. Call with the condition held."""
        bounds = [remaining, MAX_BLOCK_S, self._last_attempt + SAFETY_S - time.monotonic()]
        if self._next_due is not None:
            bounds.append(self._next_due - self._clock())
        return min(bounds)

    def _attempt(self, attempt: Attempt[T]) -> list[T]:
        found, next_due = attempt()
        with self._changed:
            self._last_attempt = time.monotonic()
            self._found_empty = not found
            if not found:
                self._next_due = next_due
        return found
