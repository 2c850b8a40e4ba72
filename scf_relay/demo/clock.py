"""Virtual time for whole-flow runs: a clock that moves only when told, shared by every part of a stack.

A :class:`~scf_relay.demo.stack.LocalStack` given one drives the shim, the queue, the consumer, the vendor
emulator and the report receiver from it, and advances it whenever the queue has nothing ready, so a task that
would wait minutes for polls, deadlines or visibility timeouts finishes in milliseconds (as arq's burst-mode test
worker and Dramatiq's StubBroker do). It starts at the wall clock's now, so real timestamps stay plausible.
"""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """``clock()`` is now; :meth:`advance` moves it forward; :meth:`sleep` advances instead of waiting."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
