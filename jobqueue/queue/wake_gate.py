"""The ``wait_s`` of a queue whose server can block: one thread per queue object sleeps on the server, the rest here.

A receiver that found nothing blocks on the server's wake signal (Redis: ``BZPOPMIN`` on the queue's wake flag)
until a message may be receivable: the flag is set by whatever makes one ready sooner than a sleeper expects, and
the block never outlasts the earliest time a delayed or in-flight message becomes receivable (``next_due``, learnt
from the last empty receive), so delayed messages are taken on time. Only one thread of a process is on the
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

    def receive(self, attempt: Attempt[T], block: Block, wait_s: float) -> list[T]:
        """Messages from ``attempt`` within ``wait_s`` seconds, sleeping on ``block`` in between; ``[]`` if none.

        Receives at once unless a listener already sleeps on the server (its signal or timeout covers every
        message that could be ready), then waits: as the listener, or on the others' condition.
        """
        deadline = time.monotonic() + wait_s
        with self._changed:
            look_first = not self._listening or wait_s <= 0
        if look_first:
            found = self._attempt(attempt)
            if found or wait_s <= 0:
                return found
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            with self._changed:
                if self._listening:
                    self._changed.wait(remaining)
                    continue
                self._listening = True
                timeout, reason = self._timeout(remaining)
            try:
                signalled = block(timeout) if timeout >= MIN_BLOCK_S else False
            finally:
                with self._changed:
                    self._listening = False
                    self._changed.notify()
            if signalled or reason != "deadline":
                found = self._attempt(attempt)
                if found:
                    return found

    def _timeout(self, remaining: float) -> tuple[float, str]:
        """How long the listener may block, and what ends it: ``deadline`` (the caller's), ``due``, ``safety``
        or ``cap``. Call with the condition held."""
        bounds = [(remaining, "deadline"), (MAX_BLOCK_S, "cap")]
        bounds.append((self._last_attempt + SAFETY_S - time.monotonic(), "safety"))
        if self._next_due is not None:
            bounds.append((self._next_due - self._clock(), "due"))
        return min(bounds)

    def _attempt(self, attempt: Attempt[T]) -> list[T]:
        found, next_due = attempt()
        with self._changed:
            self._last_attempt = time.monotonic()
            if not found:
                self._next_due = next_due
        return found
