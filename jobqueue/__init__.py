"""Job messages, the queue (data and operator planes) and ledger protocols, and their backends chosen by URL.

``open_queue(url)``: the data plane every consumer uses (:class:`~jobqueue.queue.base.Queue`).
``open_queue_admin(url)``: the operator plane of the same queue (:class:`~jobqueue.queue.base.QueueAdmin`: dead
letters, and statistics where the backend has them). URLs: ``sqlite:///path``, ``redis://host:6379/0``,
``cmq://q?region=gz&dlq=d``. ``open_ledger("sqlite:///path")``, ``open_ledger("redis://...")``. Backends are
imported lazily so a function only loads the client it uses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jobqueue.errors import QueueConfigError

if TYPE_CHECKING:
    from jobqueue.ledger.base import Ledger
    from jobqueue.queue.base import Clock, Queue, QueueAdmin

_SCHEMES = "use sqlite://, redis://, cmq://"


def open_queue(url: str, *, max_receive_count: int = 5, clock: Clock = time.time) -> Queue:
    """The data plane of the queue at ``url``. ``clock`` is its time source (SQLite, Redis: every delay and
    deadline; CMQ: only dead-letter stamps, delivery runs on the service's clock). Raises QueueConfigError."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from jobqueue.queue.sqlite import SqliteQueue

        return SqliteQueue.from_url(url, max_receive_count=max_receive_count, clock=clock)
    if scheme in ("redis", "rediss"):
        from jobqueue.queue.redis import RedisQueue

        return RedisQueue.from_url(url, max_receive_count=max_receive_count, clock=clock)
    if scheme == "cmq":
        from jobqueue.queue.cmq import CmqQueue

        return CmqQueue.from_url(url, max_receive_count=max_receive_count, clock=clock)
    raise QueueConfigError(f"RELAY_QUEUE: unsupported queue URL scheme {scheme!r} ({_SCHEMES})")


def open_queue_admin(url: str, *, max_receive_count: int = 5, clock: Clock = time.time) -> QueueAdmin:
    """The operator plane of the queue at ``url``: SQLite and Redis open the same class as :func:`open_queue`;
    CMQ opens its dead-letter queue reader, with control-plane statistics when the URL has ``api_region=``.
    ``clock`` as in :func:`open_queue` (CMQ: unused). Raises QueueConfigError."""
    if urlsplit(url).scheme == "cmq":
        from jobqueue.queue.cmq_dead_letters import CmqDeadLetters

        return CmqDeadLetters.from_url(url, max_receive_count=max_receive_count)
    from jobqueue.queue.base import QueueAdmin as _Admin

    queue = open_queue(url, max_receive_count=max_receive_count, clock=clock)
    if not isinstance(queue, _Admin):  # pragma: no cover - every non-CMQ backend has both planes
        raise QueueConfigError(f"RELAY_QUEUE: {type(queue).__name__} has no operator plane")
    return queue


def open_ledger(url: str) -> Ledger:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from jobqueue.ledger.sqlite import SqliteLedger

        return SqliteLedger.from_url(url)
    if scheme in ("redis", "rediss"):
        from jobqueue.ledger.redis import RedisLedger

        return RedisLedger.from_url(url)
    raise QueueConfigError(f"RELAY_LEDGER: unsupported ledger URL scheme {scheme!r} (use sqlite:// or redis://)")
