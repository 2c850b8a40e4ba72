"""The drain loop: receive a batch, decide each message's step, apply the decision; stop when idle or out of budget.

Burst mode by nature (like arq's): an SCF run drains until the queue has nothing ready or its time budget is
spent, then returns. An empty receive does not prove an empty queue (CMQ may deliver a fresh message seconds
late), so each receive long-polls ``RELAY_RECEIVE_WAIT_S`` (never past the budget) and the drain calls the queue
idle only after ``RELAY_IDLE_RECEIVES`` consecutive empty receives. The long-running worker calls it in a
loop. Observers plug in through :class:`Hooks` (as Dramatiq middleware or arq's ``on_job_*``), never by
wrapping the queue.

A runner keeps a task whose next stage is due at once (poll → collect → audit → report), only while the budget
leaves room for another step and no stop was asked for: COLLECT and AUDIT join the hop before them
(:mod:`consumer.dispatch`), and where the queue and the ledger allow it the next hop is handed on in place
(:meth:`consumer.effects.apply`'s ``in_place``), at most :data:`IN_PLACE_HOPS` hops in a row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumer.decisions import Continue, Decision, Defer, ToDeadLetter
from consumer.dispatch import handle, handle_message
from consumer.effects import apply
from consumer.services import Services
from jobqueue.message import JobMessage
from jobqueue.queue.base import Received, Releasable
from relay_core import logs
from relay_core.settings import RelaySettings

log = logs.get("consumer.drain")
#: most hops one received message runs in place, one after another (each hop is bounded; this bounds the chain)
IN_PLACE_HOPS = 8


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
    def from_context(cls, context: dict[str, Any] | None, margin_s: float, default_s: float = 60.0) -> Budget:
        """Budget of an SCF run: ``time_limit_in_ms`` from the context minus a safety margin."""
        limit_ms = (context or {}).get("time_limit_in_ms")
        total = limit_ms / 1000.0 if isinstance(limit_ms, (int, float)) and limit_ms > 0 else default_s
        return cls(max(0.0, total - margin_s))


@dataclass(frozen=True)
class Hooks:
    """Observers of a drain. ``on_receive`` sees every received message before its step; ``on_step`` every
    applied decision with the step's wall time in ms. Hooks must not raise."""

    on_receive: Callable[[Received], None] | None = None
    on_step: Callable[[JobMessage | None, Decision, float], None] | None = None


@dataclass
class DrainStats:
    received: int = 0
    handed_on: int = 0  # hops run in place by the runner of the one before
    sent: int = 0
    acked: int = 0
    dead_lettered: int = 0
    errors: int = 0
    step_ms: list[float] = field(default_factory=list)
    stopped_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        steps = sorted(self.step_ms)
        return {
            "received": self.received,
            "handed_on": self.handed_on,
            "sent": self.sent,
            "acked": self.acked,
            "dead_lettered": self.dead_lettered,
            "errors": self.errors,
            "stopped_by": self.stopped_by,
            "step_ms_p50": round(steps[len(steps) // 2], 2) if steps else None,
            "step_ms_max": round(steps[-1], 2) if steps else None,
        }


def drain(
    svc: Services,
    budget: Budget,
    *,
    stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    hooks: Hooks = Hooks(),
) -> DrainStats:
    """Process messages until the queue is idle, the budget is spent, ``stop()`` is true or ``max_messages``."""
    stats = DrainStats()
    settings = svc.settings
    empty_receives = 0
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
        wait_s = receive_wait(settings.receive_wait_s, budget.remaining() - settings.step_margin_s)
        batch = svc.queue.receive(want, visibility_timeout_s=settings.visibility_timeout_s, wait_s=wait_s)
        if not batch:
            empty_receives += 1
            if empty_receives >= settings.idle_receives:
                stats.stopped_by = "idle"
                break
            continue
        empty_receives = 0
        for index, received in enumerate(batch):
            if budget.remaining() <= settings.step_margin_s or stop():
                _give_back(svc, batch[index:])
                break
            stats.received += 1
            if hooks.on_receive is not None:
                hooks.on_receive(received)
            process(svc, received, stats, hooks, in_place=lambda: _room_for_more(budget, settings, stop))
    return stats


def _room_for_more(budget: Budget, settings: RelaySettings, stop: Callable[[], bool]) -> bool:
    """Whether a runner may go on with a hop handed on in place: the budget leaves room for another step (the
    margin twice over) and no stop was asked for."""
    return budget.remaining() > 2 * settings.step_margin_s and not stop()


def receive_wait(wanted_s: float, left_s: float) -> float:
    """The long-poll of the next receive: ``wanted_s``, cut to the whole seconds the budget still has (CMQ
    rounds a wait up to whole seconds, so a fraction could overrun the budget)."""
    if left_s == float("inf"):
        return wanted_s
    return max(0.0, min(wanted_s, float(int(left_s))))


def _give_back(svc: Services, unstarted: list[Received]) -> None:
    """Release messages this run received but will not start, so they need not wait out their visibility
    (a queue that is not Releasable, CMQ, gives them back when their visibility timeout ends)."""
    queue = svc.queue
    if not isinstance(queue, Releasable):
        return
    for received in unstarted:
        try:
            queue.release(received.receipt)
        except Exception:  # noqa: BLE001 - they come back after the visibility timeout anyway
            log.warning("could not release a message", extra={"message_id": received.message_id}, exc_info=True)


def process(
    svc: Services,
    received: Received,
    stats: DrainStats | None = None,
    hooks: Hooks = Hooks(),
    *,
    in_place: Callable[[], bool] = lambda: False,
) -> Decision | None:
    """Decide one received message and apply the decision, then run the hops handed on in place while
    ``in_place()`` allows. Returns the last decision (``None`` if applying one failed)."""
    stats = stats if stats is not None else DrainStats()
    started = time.perf_counter()
    try:
        msg, decision = handle(received.body, svc, join=in_place)
    except Exception:  # noqa: BLE001 - a ledger fault: the message stays and comes back later
        _failed(stats, received)
        return None
    for hops in range(IN_PLACE_HOPS + 1):
        try:
            handed = apply(svc, received, msg, decision, in_place=hops < IN_PLACE_HOPS and in_place())
        except Exception:  # noqa: BLE001 - queue/ledger faults: the message stays and comes back later
            _failed(stats, received)
            return None
        _count(stats, hooks, msg, decision, started, handed_on=handed is not None)
        if handed is None:
            break
        started = time.perf_counter()
        msg, hop = handed
        try:
            msg, decision = handle_message(msg, svc, hop, join=in_place)
        except Exception:  # noqa: BLE001 - a ledger fault: the message (now this hop) comes back later
            _failed(stats, received)
            return None
    return decision


def _failed(stats: DrainStats, received: Received) -> None:
    stats.errors += 1
    log.exception("step could not be applied; message will be redelivered", extra={"message_id": received.message_id})


def _count(
    stats: DrainStats, hooks: Hooks, msg: JobMessage | None, decision: Decision, started: float, *, handed_on: bool
) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    stats.step_ms.append(elapsed_ms)
    if handed_on:
        stats.handed_on += 1
    elif isinstance(decision, ToDeadLetter):
        stats.dead_lettered += 1
    elif isinstance(decision, (Continue, Defer)):
        stats.sent += 1
    else:
        stats.acked += 1
    if hooks.on_step is not None:
        hooks.on_step(msg, decision, elapsed_ms)
