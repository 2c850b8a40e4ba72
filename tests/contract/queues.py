"""Every Queue backend the contract suite runs against.

``QUEUES``: name -> factory(tmp_path, redis_url, max_receive_count, clock) -> Queue.

To add a backend, write a factory and add it to ``QUEUES``. Calling a factory twice with the same arguments
must open the same stored queue (the suite checks that messages survive closing and reopening), so derive
the queue's place from ``tmp_path`` / ``redis_url``.

* ``redis_url`` is the ``redis_url`` fixture's URL for names in ``NEEDS_REDIS``, else ``None``.
* ``clock`` is a fake clock (unix seconds) that the suite advances instead of sleeping. A backend that
  cannot take it (it asks a server for the time) is listed in ``REAL_CLOCK``: the suite then sleeps for
  real, and each of its waits is a few seconds at most.

``fakeredis`` is not listed: running the Lua scripts needs ``lupa``, which is not installed here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobqueue.queue.base import Queue

Clock = Callable[[], float]
QueueFactory = Callable[[Path, str | None, int, Clock], Queue]


def _sqlite(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> Queue:
    from jobqueue.queue.sqlite import SqliteQueue

    url = f"sqlite:///{tmp_path / 'queue' / 'queue.db'}"
    return SqliteQueue.from_url(url, max_receive_count=max_receive_count, clock=clock)


def _redis(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> Queue:
    from jobqueue.queue.redis import RedisQueue

    assert redis_url, "the redis queue needs the redis_url fixture"
    return RedisQueue.from_url(redis_url, max_receive_count=max_receive_count, clock=clock)


def _cmq(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> Queue:
    """TDMQ for CMQ over the data-plane HTTP API, against the signature-checking local server (on ``clock``)."""
    from tests.servers.cmq_server import make_cmq_queue

    return make_cmq_queue(tmp_path, redis_url, max_receive_count, clock)


QUEUES: dict[str, QueueFactory] = {"sqlite": _sqlite, "redis": _redis, "cmq": _cmq}

NEEDS_REDIS = frozenset({"redis"})
REAL_CLOCK: frozenset[str] = frozenset()
