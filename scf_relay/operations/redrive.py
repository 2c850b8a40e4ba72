"""Sending dead letters back: what each one will do when it runs again, and the move itself.

The prediction follows the consumer's order of checks (:mod:`consumer.dispatch`): poison, foreign task, an
outcome already recorded (reported: dropped; not reported: reported now), the deadline (submit and poll time
out with 生成超时), the ambiguous submit claim (bounces straight back unless ``--resubmit`` clears it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jobqueue.ledger.base import Ledger, SubmitState, TaskRecord
from jobqueue.message import Stage
from jobqueue.queue.base import DeadLetterStore
from relay_core.domain import ErrorReason
from scf_relay.operations.letters import LetterView
from scf_relay.operations.timefmt import age

#: letters moved per call when no rate is asked for (CMQ: each call is one search of the dead-letter queue)
CHUNK = 50


@dataclass(frozen=True)
class Prediction:
    """``verdict`` is one of: poison, foreign, dropped, reports, times_out, bounces, resubmits, runs."""

    verdict: str
    text: str


def predict(view: LetterView, record: TaskRecord | None, now: float, *, resubmit: bool) -> Prediction:
    """What the consumer will do with ``view`` once redriven, given its task's ledger ``record``."""
    msg = view.message
    if msg is None:
        return Prediction("poison", "poison: dead-lettered again at once; `dlq purge` it")
    if view.reason_class == "foreign task":
        return Prediction("foreign", "refused again (another user's task); `dlq purge` it")
    if record is not None and record.outcome is not None and msg.stage is not Stage.REPORT:
        status = _outcome(record)
        if record.reported_at is not None:
            return Prediction("dropped", f"already reported {status}: dropped, not run again")
        return Prediction("reports", f"reports the recorded outcome {status}")
    if msg.stage in (Stage.SUBMIT, Stage.POLL) and now >= msg.deadline_at:
        return Prediction(
            "times_out",
            f"will time out: deadline passed {age(now - msg.deadline_at)} ago; reported failed "
            f"{ErrorReason.TIMEOUT.value}",
        )
    if msg.stage is Stage.SUBMIT and record is not None and record.submit_state is SubmitState.AMBIGUOUS:
        if not resubmit:
            return Prediction(
                "bounces", "ambiguous submit claim: bounces straight back unless --resubmit (check the vendor console)"
            )
        return Prediction("resubmits", "claim cleared: submits again (a second vendor job if the first exists)")
    return Prediction("runs", f"runs stage {msg.stage.value} again")


def _outcome(record: TaskRecord) -> str:
    assert record.outcome is not None
    o = record.outcome
    return o.status.value + (f" {o.error_reason}" if o.error_reason else "")


@dataclass
class RedriveRun:
    """What a redrive did; ``interrupted`` when Ctrl-C stopped it part-way (``moved`` is then what moved)."""

    moved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # gone meanwhile (redriven or consumed by someone else)
    resubmitted: list[str] = field(default_factory=list)  # tasks whose submit claim was cleared
    interrupted: bool = False


def redrive_letters(
    dead: DeadLetterStore,
    ledger: Ledger,
    views: Sequence[LetterView],
    *,
    rate_per_s: float = 0.0,
    resubmit: bool = False,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveRun:
    """Send ``views`` back to the work queue, in order. ``resubmit`` clears each submit letter's ambiguous claim
    first (only after checking the vendor console). ``rate_per_s`` > 0 moves one letter at a time, that many per
    second; otherwise letters move in chunks of :data:`CHUNK`. ``progress(done, total)`` after each move.
    Ctrl-C stops between moves and returns what moved (``interrupted``); backend errors propagate."""
    run = RedriveRun()
    step = 1 if rate_per_s > 0 or resubmit else CHUNK
    try:
        for start in range(0, len(views), step):
            chunk = views[start : start + step]
            if resubmit:
                _clear_claims(ledger, chunk, clock(), run)
            wanted = [v.message_id for v in chunk]
            moved = dead.redrive(wanted)
            run.moved.extend(moved)
            run.missing.extend(i for i in wanted if i not in set(moved))
            if progress:
                progress(start + len(chunk), len(views))
            if rate_per_s > 0 and start + step < len(views):
                sleep(1.0 / rate_per_s)
    except KeyboardInterrupt:
        run.interrupted = True
    return run


def _clear_claims(ledger: Ledger, chunk: Sequence[LetterView], now: float, run: RedriveRun) -> None:
    for view in chunk:
        msg = view.message
        if msg is not None and msg.stage is Stage.SUBMIT and ledger.reset_submit(msg.task_id, now):
            run.resubmitted.append(msg.task_id)
