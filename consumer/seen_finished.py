"""The vendor's answers that a poll saw succeed, kept briefly in this process for the COLLECT that follows.

A poll that sees its job succeed hands on to COLLECT, which needs the same answer (the result URLs). Run by the
same process moments later (in place on the Redis worker; by the same warm container on SCF, usually), COLLECT
takes the answer from here instead of asking the vendor again: one status query per task fewer. Each answer is
taken once, and only within :data:`KEEP_S` of the poll; a COLLECT run again (a redelivery, another process)
asks the vendor. Nothing here reaches a message or a log: the URLs stay in memory, as in the steps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from vendors.base import VendorStatus

#: how long a poll's answer serves a COLLECT (well inside the life of the vendor's result URLs)
KEEP_S = 30.0
#: the most answers kept at once (the oldest go first)
MAX_KEPT = 1024


class SeenFinished:
    """Thread-safe: the poll that stores an answer and the COLLECT that takes it may run on different threads."""

    def __init__(self, keep_s: float = KEEP_S, max_kept: int = MAX_KEPT) -> None:
        self._keep_s, self._max_kept = keep_s, max_kept
        self._kept: OrderedDict[tuple[str, str], tuple[float, VendorStatus]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, vendor: str, vendor_task_id: str, status: VendorStatus) -> None:
        """Keep ``status``, the answer of a status query that saw the job ``vendor_task_id`` succeed."""
        with self._lock:
            self._kept[(vendor, vendor_task_id)] = (time.monotonic() + self._keep_s, status)
            self._kept.move_to_end((vendor, vendor_task_id))
            while len(self._kept) > self._max_kept:
                self._kept.popitem(last=False)

    def take(self, vendor: str, vendor_task_id: str) -> VendorStatus | None:
        """The answer kept for the job, removed; ``None`` when there is none or it is older than ``keep_s``."""
        with self._lock:
            kept = self._kept.pop((vendor, vendor_task_id), None)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]
