"""The drain loop: receive a batch, run each message's step, apply the move; stop when idle or out of budget.

Burst mode by nature (like arq's): an SCF run drains until the queue has nothing ready or its time budget is
spent, then returns; the long-running worker calls it in a loop. Applying a move keeps invariant 4: the
successor is sent, then the ledger records the hop, then the message is deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from consumer.dispatch import handle
from consumer.transitions import Ack, DeadLetter, Defer, Next, Send
from jobqueue.message import JobMessage
from jobqueue.queue.base import Received
from scf_relay import logs

log = logs.get("consumer.drain")


@dataclass
class Budget:
    """Seconds left for this run; ``seconds=None`` means unlimited (a worker that runs until stopped)."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.monotonic() - self.started)

    @classmethod
    def from_context(cls, context: dict | None, margin_s: float, default_s: float = 60.0) -> Budget:
        """Budget of an SCF run: ``time_limit_in_ms`` from the context minus a safety margin."""
        limit_ms = (context or {}).get("time_limit_in_ms")
        total = limit_ms / 1000.0 if isinstance(limit_ms, (int, float)) and limit_ms > 0 else default_s
        return cls(max(0.0, total - margin_s))


@dataclass
class DrainStats:
    received: int = 0
    sent: int = 0
    acked: int = 0
    dead_lettered: int = 0
    errors: int = 0
    step_ms: list[float] = field(default_factory=list)
    stopped_by: str = ""

    def as_dict(self) -> dict:
        steps = sorted(self.step_ms)
        return {
            "received": self.received,
            "sent": self.sent,
            "acked": self.acked,
            "dead_lettered": self.dead_lettered,
            "errors": self.errors,
            "stopped_by": self.stopped_by,
            "step_ms_p50": round(steps[len(steps) // 2], 2) if steps else None,
            "step_ms_max": round(steps[-1], 2) if steps else None,
        }


def drain(
    svc,
    budget: Budget,
    *,
    stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    on_step: Callable[[JobMessage | None, Next, float], None] | None = None,
) -> DrainStats:
    """Process messages until the queue is idle, the budget is spent, ``stop()`` is true or ``max_messages``."""
    stats = DrainStats()
    settings = svc.settings
    while True:
        if stop():
            stats.stopped_by = "stop"
            break
        if budget.remaining() <= settings.step_margin_s:
            stats.stopped_by = "budget"
            break
        if max_messages is not None and stats.received >= max_messages:
            stats.stopped_by = "max_messages"
            break
        want = (
            settings.receive_batch
            if max_messages is None
            else min(settings.receive_batch, max_messages - stats.received)
        )
        batch = svc.queue.receive(want, visibility_timeout_s=settings.visibility_timeout_s)
        if not batch:
            stats.stopped_by = "idle"
            break
        for index, received in enumerate(batch):
            if budget.remaining() <= settings.step_margin_s or stop():
                _give_back(svc, batch[index:])
                break
            stats.received += 1
            process(svc, received, stats, on_step)
    return stats


def _give_back(svc, unstarted: list[Received]) -> None:
    """Release messages this run received but will not start, so they need not wait out their visibility."""
    for received in unstarted:
        try:
            svc.queue.release(received.receipt)
        except Exception:  # noqa: BLE001 - they come back after the visibility timeout anyway
            log.warning("could not release a message", extra={"message_id": received.message_id}, exc_info=True)


def process(svc, received: Received, stats: DrainStats | None = None, on_step=None) -> Next | None:
    """Run one received message and apply its move. Returns the move (``None`` if applying it failed)."""
    stats = stats or DrainStats()
    started = time.perf_counter()
    try:
        msg, move = handle(received.body, svc)
        apply(svc, received, msg, move)
    except Exception:  # noqa: BLE001 - queue/ledger faults: the message stays and comes back later
        stats.errors += 1
        log.exception(
            "step could not be applied; message will be redelivered", extra={"message_id": received.message_id}
        )
        return None
    elapsed_ms = (time.perf_counter() - started) * 1000
    stats.step_ms.append(elapsed_ms)
    if isinstance(move, (Send, Defer)):
        stats.sent += 1
    elif isinstance(move, DeadLetter):
        stats.dead_lettered += 1
    else:
        stats.acked += 1
    if on_step is not None:
        on_step(msg, move, elapsed_ms)
    return move


def apply(svc, received: Received, msg: JobMessage | None, move: Next) -> None:
    if isinstance(move, DeadLetter):
        with logs.bind(task_id=msg.task_id if msg else None):
            svc.queue.dead_letter(received, move.reason)
            log.error("dead-lettered", extra={"reason": move.reason, "message_id": received.message_id})
            if msg is not None:  # a redrive of this hop must not wait for the dead runner's lease
                svc.ledger.release_hop(msg.task_id, msg.seq, svc.clock())
        return
    forward(svc, msg, move)
    svc.queue.delete(received.receipt)


def forward(svc, msg: JobMessage | None, move: Next) -> None:
    """Send what comes next, then record the hop as handled (a deferred or stale message records nothing)."""
    if isinstance(move, Defer):
        svc.queue.send(move.message.dumps(), min(move.delay_s, svc.queue.max_delay_s))
        return
    if isinstance(move, Send):
        send_successor(svc, move)
    if msg is not None and not (isinstance(move, Ack) and move.note == "stale"):
        svc.ledger.advance(msg.task_id, msg.seq, svc.clock())


def send_successor(svc, move: Send) -> None:
    """Send the successor; a delay longer than the queue allows becomes hops (``not_before``)."""
    message, delay = move.message, max(0.0, move.delay_s)
    if delay > svc.queue.max_delay_s:
        message = message.model_copy(update={"not_before": svc.clock() + delay})
        delay = svc.queue.max_delay_s
    svc.queue.send(message.dumps(), delay)
