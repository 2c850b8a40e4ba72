"""Job messages, the Queue and Ledger protocols, and their backends chosen by URL.

``open_queue("sqlite:///path")``, ``open_queue("redis://host:6379/0")``, ``open_queue("cmq://q?region=gz&dlq=d")``;
``open_ledger("sqlite:///path")``, ``open_ledger("redis://...")``. Backends are imported lazily so a function
only loads the client it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jobqueue.errors import QueueConfigError

if TYPE_CHECKING:
    from jobqueue.ledger.base import Ledger
    from jobqueue.queue.base import Queue


def open_queue(url: str, *, max_receive_count: int = 5) -> Queue:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from jobqueue.queue.sqlite import SqliteQueue

        return SqliteQueue.from_url(url, max_receive_count=max_receive_count)
    if scheme in ("redis", "rediss"):
        from jobqueue.queue.redis import RedisQueue

        return RedisQueue.from_url(url, max_receive_count=max_receive_count)
    if scheme == "cmq":
        from jobqueue.queue.cmq import CmqQueue

        return CmqQueue.from_url(url, max_receive_count=max_receive_count)
    raise QueueConfigError(f"RELAY_QUEUE: unsupported queue URL scheme {scheme!r} (use sqlite://, redis://, cmq://)")


def open_ledger(url: str) -> Ledger:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from jobqueue.ledger.sqlite import SqliteLedger

        return SqliteLedger.from_url(url)
    if scheme in ("redis", "rediss"):
        from jobqueue.ledger.redis import RedisLedger

        return RedisLedger.from_url(url)
    raise QueueConfigError(f"RELAY_LEDGER: unsupported ledger URL scheme {scheme!r} (use sqlite:// or redis://)")
