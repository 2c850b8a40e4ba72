"""The ledger's record cache: bounded, short-lived, and never goes back to an older version of a record."""

from __future__ import annotations

import pytest

from jobqueue.ledger.record import TaskRecord
from jobqueue.ledger.record_cache import RecordCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_served_until_its_ttl_and_not_after():
    clock = Clock()
    cache = RecordCache(ttl_s=5, clock=clock)
    cache.put(TaskRecord("t1", version=3))
    clock.now += 5
    assert cache.get("t1") == TaskRecord("t1", version=3)
    clock.now += 0.1
    assert cache.get("t1") is None and len(cache) == 0


def test_the_least_recently_used_entry_goes_first_when_full():
    cache = RecordCache(max_entries=2)
    cache.put(TaskRecord("a", version=1))
    cache.put(TaskRecord("b", version=1))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put(TaskRecord("c", version=1))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_an_older_version_never_replaces_a_newer_one_and_forget_drops():
    cache = RecordCache()
    cache.put(TaskRecord("t1", version=4, seq=2))
    cache.put(TaskRecord("t1", version=3, seq=1))  # a slow reader's load
    assert cache.get("t1") == TaskRecord("t1", version=4, seq=2)
    cache.forget("t1")
    assert cache.get("t1") is None


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        RecordCache(ttl_s=0)
    with pytest.raises(ValueError):
        RecordCache(max_entries=0)
