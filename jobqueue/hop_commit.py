"""A hop's end in one atomic step where the queue and the ledger share a store.

The consumer's effects are, in order, "send the successor → record the hop as handled (``advance``) → delete the
received message" (:mod:`consumer.effects`). When the queue and the ledger live in the same Redis, a
:class:`HopCommit` does them in one script: one round trip instead of three, and no crash can fall between them
(stronger than the order, which only makes each gap safe). It also lets a runner keep a task whose next hop is due
at once (:meth:`HopCommit.hand_on`): the received message takes the successor's body instead of a new message
being sent, received and admitted. Elsewhere :func:`open_hop_commit` answers ``None`` and the effects run one after
another.
"""

from __future__ import annotations

from typing import Protocol

from jobqueue.ledger.base import Hop, Ledger, Submission
from jobqueue.queue.base import Queue, Received
from relay_core.domain import Outcome


class HopCommit(Protocol):
    def continue_hop(
        self,
        received: Received,
        task_id: str,
        seq: int,
        successor: str,
        delay_s: float,
        now: float,
        *,
        submission: Submission | None = None,
        vendor_done: str | None = None,
        unleased: bool = False,
    ) -> bool:
        """Atomically: send ``successor`` (receivable after ``delay_s``, within the queue's ``max_delay_s``), raise
        the task's handled seq to ``seq`` as :meth:`Ledger.advance` does (with ``submission``, recording it first as
        :meth:`Ledger.record_submission` does; with ``vendor_done``, that vendor job seen finished first, as
        :meth:`Ledger.mark_vendor_done` does), and delete ``received`` if its receipt is still current (as
        :meth:`Queue.delete`). All or nothing; returns what :meth:`Ledger.advance_with` returns. Raises
        ``BackendUnavailable`` (then nothing happened) like the queue and the ledger.

        ``unleased``: the hop ran without its lease (:meth:`Ledger.peek_hop`): the seq rises as
        ``Ledger.advance_with(..., unleased=True)`` raises it, and ``successor`` is sent only when it rose; otherwise
        ``received`` is only deleted (another run of the hop, or a later one, hands the task on)."""
        ...

    def hand_on(
        self,
        received: Received,
        task_id: str,
        seq: int,
        successor: str,
        lease_s: float,
        now: float,
        *,
        user_id: str | None = None,
        outcome: Outcome | None = None,
        report_message: str | None = None,
        vendor_done: str | None = None,
    ) -> Hop:
        """Atomically, when hop ``seq + 1`` can be admitted at once: record ``outcome`` (as
        :meth:`Ledger.record_outcome`) and ``vendor_done`` (as :meth:`Ledger.mark_vendor_done`), raise the handled
        seq to ``seq``, take the lease of hop ``seq + 1`` for ``lease_s`` (:meth:`Ledger.hand_on_with`), and give
        ``received`` the body ``successor`` (its receipt stays current, hidden for ``lease_s`` more), so this runner
        goes on with the successor and a crash leaves it in the queue. Returns the hop of ``seq + 1``: ``RUN``
        (with its record) when all of that happened; any other state (``STALE`` too when ``received`` was received
        again elsewhere) when nothing was written, and the caller ends the hop the usual way. Raises
        ``BackendUnavailable`` (then nothing happened)."""
        ...

    def end_hop(self, received: Received, task_id: str, seq: int, now: float, *, reported: bool = False) -> bool:
        """Atomically: record that the task's report was acknowledged (``reported``, as :meth:`Ledger.mark_reported`),
        raise the handled seq to ``seq``, and delete ``received`` if its receipt is still current. Returns whether
        the seq rose; raises ``BackendUnavailable`` (then nothing happened)."""
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
