"""The records a ledger object last read or wrote, per task: a bounded, short-lived, thread-safe LRU.

:meth:`jobqueue.ledger.base.Ledger._apply` runs a write's rule on the cached record instead of loading it first.
That is only ever optimistic: a change is written by compare-and-set on the cached ``version`` (a stale entry
loses, is dropped and the write runs again on a fresh load), and an answer that changes nothing is confirmed by
a real load before it is returned. An entry older than ``ttl_s`` is not served, so a record is never trusted
long after it was seen (a backend whose records can vanish and start again at version 1, by expiry or pruning,
bounds ``ttl_s`` well below that).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from jobqueue.ledger.record import TaskRecord

DEFAULT_TTL_S = 10.0
DEFAULT_MAX_ENTRIES = 4096


class RecordCache:
    """``task_id`` → the last record seen (read or written) for it, at most ``max_entries``, each for ``ttl_s``."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_entries <= 0:
            raise ValueError("a record cache needs ttl_s > 0 and max_entries > 0")
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, TaskRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, task_id: str) -> TaskRecord | None:
        """The record last seen for ``task_id`` if it was seen within ``ttl_s``, else ``None``."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return None
            if self._clock() - entry[0] > self.ttl_s:
                del self._entries[task_id]
                return None
            self._entries.move_to_end(task_id)
            return entry[1]

    def put(self, record: TaskRecord) -> None:
        """Remember ``record`` as its task's latest; an older version than the one held is ignored (a slow reader
        must not replace what a faster writer of this object stored after it)."""
        with self._lock:
            held = self._entries.get(record.task_id)
            if held is not None and held[1].version > record.version:
                return
            self._entries[record.task_id] = (self._clock(), record)
            self._entries.move_to_end(record.task_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, task_id: str) -> None:
        """Drop what is held for ``task_id`` (it proved stale)."""
        with self._lock:
            self._entries.pop(task_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
