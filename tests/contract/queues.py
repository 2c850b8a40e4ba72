"""Every queue backend the contract suite runs against, in both planes.

``QUEUES``: name -> factory(tmp_path, redis_url, max_receive_count, clock) -> Queue (the data plane).
``ADMINS``: name -> the same kind of factory -> QueueAdmin (the operator plane of that same stored queue).

To add a backend, write both factories and add them. Calling a factory twice with the same arguments must open
the same stored queue (the suite checks that messages survive closing and reopening, and reads a queue's dead
letters and counts through its operator plane), so derive the queue's place from ``tmp_path`` / ``redis_url``.

* ``redis_url`` is the ``redis_url`` fixture's URL for names in ``NEEDS_REDIS``, else ``None``.
* ``clock`` is a fake clock (unix seconds) that the suite advances instead of sleeping. A backend that
  cannot take it (it asks a server for the time) is listed in ``REAL_CLOCK``: the suite then sleeps for
  real, and each of its waits is a few seconds at most.
* ``NOT_RELEASABLE``: backends whose data plane is not :class:`~jobqueue.queue.base.Releasable` (the suite
  checks the type says so).

CMQ runs against the signature-checking local server of ``tests/servers/cmq_server.py``: one server per
``tmp_path``, on the suite's clock, serving while any queue or admin on it is open (stopped when the last one
closes; its messages stay in memory for a reopen on a new port). Queues: ``work`` (VisibilityTimeout 2 s,
MaxReceiveCount = ``max_receive_count``, changed on reopen) and ``dead_letters`` (VisibilityTimeout 1 s);
temporary credentials with a token. Its admin counts from the server, as the control plane would.

``fakeredis`` is not listed: running the Lua scripts needs ``lupa``, which is not installed here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobqueue.queue.base import Clock, Queue, QueueAdmin, QueueStats, StatsSource
from jobqueue.queue.cmq import CmqQueue
from jobqueue.queue.cmq_dead_letters import CmqDeadLetters
from tencent_plumbing.credentials import static_credentials
from tests.servers.cmq_server import LocalCmqServer

QueueFactory = Callable[[Path, "str | None", int, Clock], Queue]
AdminFactory = Callable[[Path, "str | None", int, Clock], QueueAdmin]


# -- SQLite and Redis: one class serves both planes ------------------------------------------------
def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue' / 'queue.db'}"


def _sqlite(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> Queue:
    from jobqueue import open_queue

    return open_queue(_sqlite_url(tmp_path), max_receive_count=max_receive_count, clock=clock)


def _sqlite_admin(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> QueueAdmin:
    from jobqueue import open_queue_admin

    return open_queue_admin(_sqlite_url(tmp_path), max_receive_count=max_receive_count, clock=clock)


def _redis(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> Queue:
    from jobqueue import open_queue

    assert redis_url, "the redis queue needs the redis_url fixture"
    return open_queue(redis_url, max_receive_count=max_receive_count, clock=clock)


def _redis_admin(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> QueueAdmin:
    from jobqueue import open_queue_admin

    assert redis_url, "the redis queue needs the redis_url fixture"
    return open_queue_admin(redis_url, max_receive_count=max_receive_count, clock=clock)


# -- CMQ: the data-plane client, and the dead-letter reader with the server's counts ---------------
CMQ_SECRET_ID = "AKIDlocalcmqcontract"
CMQ_SECRET_KEY = "local-cmq-contract-secret-key"
CMQ_TOKEN = "local-cmq-contract-session-token"
CMQ_VISIBILITY_S = 2  # the work queue's VisibilityTimeout: the contract suite's VISIBILITY_S
CMQ_DLQ_VISIBILITY_S = 1
_cmq_servers: dict[str, LocalCmqServer] = {}
_cmq_holders: dict[str, int] = {}
_cmq_lock = threading.Lock()


class ServerCounts(StatsSource):
    """The counts DescribeCmqQueueDetail would give, read from the local server (the control plane's role)."""

    def __init__(self, server: LocalCmqServer, queue: str, dlq: str) -> None:
        self.server, self.queue, self.dlq = server, queue, dlq

    def stats(self) -> QueueStats:
        dead = self.server.broker.counts(self.dlq)
        return QueueStats(dead=sum(dead.values()), **self.server.broker.counts(self.queue))


class _HoldsServer:
    """Keeps its contract server serving until :meth:`_let_go` (once, however often it is called)."""

    server: LocalCmqServer
    _key: str
    _released = False

    def _hold(self, key: str, server: LocalCmqServer) -> None:
        self._key, self.server = key, server

    def _let_go(self) -> None:
        with _cmq_lock:
            if self._released:
                return
            self._released = True
            _cmq_holders[self._key] -= 1
            if _cmq_holders[self._key] == 0:
                self.server.stop()


class ContractCmqQueue(CmqQueue, _HoldsServer):
    def close(self) -> None:
        super().close()
        self._let_go()


class ContractCmqDeadLetters(CmqDeadLetters, _HoldsServer):
    def close(self) -> None:
        super().close()
        self._let_go()


def _cmq_server(tmp_path: Path, max_receive_count: int, clock: Clock) -> tuple[str, LocalCmqServer]:
    """The server of ``tmp_path`` (made on first use), serving, with one more holder counted."""
    key = str(tmp_path)
    with _cmq_lock:
        server = _cmq_servers.get(key)
        if server is None:
            server = LocalCmqServer(CMQ_SECRET_ID, CMQ_SECRET_KEY, CMQ_TOKEN, clock=clock)
            server.create_queue("dead_letters", visibility_timeout_s=CMQ_DLQ_VISIBILITY_S)
            _cmq_servers[key] = server
        server.create_queue(
            "work", visibility_timeout_s=CMQ_VISIBILITY_S, dlq="dead_letters", max_receive_count=max_receive_count
        )
        if not server.running:
            server.start()
        _cmq_holders[key] = _cmq_holders.get(key, 0) + 1
    return key, server


def _cmq_options(server: LocalCmqServer, max_receive_count: int) -> dict[str, Any]:
    return {
        "endpoint": server.endpoint,
        "credentials": static_credentials(CMQ_SECRET_ID, CMQ_SECRET_KEY, CMQ_TOKEN),
        "max_receive_count": max_receive_count,
    }


def cmq_queue(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> ContractCmqQueue:
    """TDMQ for CMQ over the data-plane HTTP API; ``clock`` stamps dead letters (the server delivers on it)."""
    key, server = _cmq_server(tmp_path, max_receive_count, clock)
    queue = ContractCmqQueue("work", "dead_letters", clock=clock, **_cmq_options(server, max_receive_count))
    queue._hold(key, server)
    return queue


def cmq_admin(tmp_path: Path, redis_url: str | None, max_receive_count: int, clock: Clock) -> ContractCmqDeadLetters:
    """The CMQ dead-letter reader, looking a little longer than the DLQ hides, with the server's counts."""
    key, server = _cmq_server(tmp_path, max_receive_count, clock)
    admin = ContractCmqDeadLetters(
        "work",
        "dead_letters",
        dead_letter_search_s=CMQ_DLQ_VISIBILITY_S + 1,
        stats=ServerCounts(server, "work", "dead_letters"),
        **_cmq_options(server, max_receive_count),
    )
    admin._hold(key, server)
    return admin


QUEUES: dict[str, QueueFactory] = {"sqlite": _sqlite, "redis": _redis, "cmq": cmq_queue}
ADMINS: dict[str, AdminFactory] = {"sqlite": _sqlite_admin, "redis": _redis_admin, "cmq": cmq_admin}

NEEDS_REDIS = frozenset({"redis"})
REAL_CLOCK: frozenset[str] = frozenset()
NOT_RELEASABLE = frozenset({"cmq"})
#: backends whose operator plane cannot look without receiving (not :class:`~jobqueue.queue.base.Peekable`)
NOT_PEEKABLE = frozenset({"cmq"})
