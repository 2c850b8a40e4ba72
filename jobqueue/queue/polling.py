"""The ``wait_s`` loop of a backend that has no server-side long poll (SQLite; Redis blocks: see ``wake_gate``).

The wait is measured on the monotonic clock, never on a queue's injectable clock, so a test that freezes
the queue's clock still gets a bounded wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_SLEEP_S = 0.01
MAX_SLEEP_S = 0.2


def poll_until_some(attempt: Callable[[], list[T]], wait_s: float) -> list[T]:
    """Call ``attempt`` until it returns something or ``wait_s`` seconds have passed (at least once).

    Sleeps start at 10 ms and double up to 200 ms, so an idle waiter costs a few queries a second.
    """
    found = attempt()
    if found or wait_s <= 0:
        return found
    deadline = time.monotonic() + wait_s
    sleep_s = FIRST_SLEEP_S
    while True:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return found
        time.sleep(min(sleep_s, remaining_s))
        sleep_s = min(sleep_s * 2, MAX_SLEEP_S)
        found = attempt()
        if found:
            return found
