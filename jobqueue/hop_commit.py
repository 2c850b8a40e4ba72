"""A hop's end in one atomic step where the queue and the ledger share a store: successor, handled seq, delete.

The consumer's ``Continue`` effect is, in order, "send the successor → record the hop as handled (``advance``) →
delete the received message" (:mod:`consumer.effects`). When the queue and the ledger live in the same Redis, a
:class:`HopCommit` does all three in one script: one round trip instead of three, and no crash can fall between
them (stronger than the order, which only makes each gap safe). Elsewhere :func:`open_hop_commit` answers
``None`` and the effects run one after another as before.
"""

from __future__ import annotations

from typing import Protocol

from jobqueue.ledger.base import Ledger
from jobqueue.queue.base import Queue, Received


class HopCommit(Protocol):
    def continue_hop(
        self, received: Received, task_id: str, seq: int, successor: str, delay_s: float, now: float
    ) -> bool:
        """Atomically: send ``successor`` (receivable after ``delay_s``, within the queue's ``max_delay_s``), raise
        the task's handled seq to ``seq`` as :meth:`Ledger.advance` does, and delete ``received`` if its receipt is
        still current (as :meth:`Queue.delete`). All or nothing; returns whether the seq rose. Raises
        ``BackendUnavailable`` (then nothing happened) like the queue and the ledger."""
        ...


def open_hop_commit(queue: Queue, ledger: Ledger) -> HopCommit | None:
    """The atomic hop end for this queue and ledger, ``None`` unless both are on one Redis server and database."""
    from jobqueue.queue.redis import RedisQueue  # imports redis-py only when used

    if not isinstance(queue, RedisQueue):
        return None
    from jobqueue.ledger.redis import RedisLedger
    from jobqueue.redis_hop import RedisHopCommit

    if not isinstance(ledger, RedisLedger) or not ledger.same_server(queue.client):
        return None
    return RedisHopCommit(queue, ledger)
