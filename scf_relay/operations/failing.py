"""Giving a task up: record ``failed`` with the REPORT hop it owes, then send that REPORT (as
:mod:`consumer.effects` does for a ``Finish``), so the normal report path and the report sweep both deliver it
and the backend refunds the user.

The first recorded outcome always wins: a task that already had one keeps it, and *that* is what gets reported
(the result says so). A task already reported is not reported again. A task a worker is running right now (a
live hop lease) is refused unless ``force``: the worker may be about to record a better outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqueue.errors import PoisonMessage
from jobqueue.ledger.base import Ledger, TaskRecord
from jobqueue.message import InputObject, JobMessage, Stage, parse
from jobqueue.queue.base import DeadLetterStore, Queue
from relay_core.domain import ErrorReason, Outcome
from scf_relay.operations.letters import LetterView
from scf_relay.operations.timefmt import age

#: the reasons an operator may report (``--reason``)
REASONS = tuple(
    r.value
    for r in (
        ErrorReason.FAILED,
        ErrorReason.TIMEOUT,
        ErrorReason.INVALID_INPUT,
        ErrorReason.BLOCKED,
        ErrorReason.GIVEN_UP,
    )
)


@dataclass(frozen=True)
class FailResult:
    """``action``: reported | kept_outcome | already_reported | refused | removed_poison | unknown_user | no_task.

    ``ok`` is False for refused, unknown_user and no_task (nothing changed)."""

    target: str  # the message id (dlq fail) or task id (tasks fail)
    task_id: str | None
    action: str
    text: str
    status: str | None = None
    error_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.action not in ("refused", "unknown_user", "no_task")


def fail_letter(
    dead: DeadLetterStore,
    queue: Queue,
    ledger: Ledger,
    view: LetterView,
    reason: ErrorReason,
    now: float,
    *,
    operator: str,
    force: bool = False,
    dry_run: bool = False,
) -> FailResult:
    """Give up the task of one dead letter, then drop the letter; a poison letter (no task) is only dropped."""
    msg = view.message
    if msg is None:
        if not dry_run:
            dead.remove_dead(view.message_id)
        return FailResult(view.message_id, view.task_id, "removed_poison", "poison letter dropped (no task to report)")
    record = ledger.get(msg.task_id)
    result = _give_up(queue, ledger, msg, record, view.message_id, reason, now, operator, force, dry_run)
    if result.ok and not dry_run:
        dead.remove_dead(view.message_id)
    return result


def fail_task(
    queue: Queue,
    ledger: Ledger,
    task_id: str,
    reason: ErrorReason,
    now: float,
    *,
    operator: str,
    force: bool = False,
    dry_run: bool = False,
) -> FailResult:
    """Give up a task that has no dead letter (expired from CMQ, or stuck without one). Its REPORT needs the
    task's user: refused when the ledger does not know it."""
    record = ledger.get(task_id)
    if record is None:
        return FailResult(task_id, task_id, "no_task", "not in the ledger (never reached a worker, or expired)")
    if record.user_id is None:
        return FailResult(
            task_id,
            task_id,
            "unknown_user",
            "the ledger does not know the task's user, so no report can be addressed; it is resolved by its "
            "dead letter (`dlq fail`) or by the backend",
        )
    base = _base_message(record, now)
    return _give_up(queue, ledger, base, record, task_id, reason, now, operator, force, dry_run)


def _give_up(
    queue: Queue,
    ledger: Ledger,
    msg: JobMessage,
    record: TaskRecord | None,
    target: str,
    reason: ErrorReason,
    now: float,
    operator: str,
    force: bool,
    dry_run: bool,
) -> FailResult:
    task = msg.task_id
    if record is not None and record.outcome is not None and record.reported_at is not None:
        o = record.outcome
        text = f"already reported {o.status.value} {o.error_reason or ''}".rstrip() + "; nothing sent"
        return FailResult(target, task, "already_reported", text, o.status.value, o.error_reason)
    if record is not None and record.outcome is None and record.hop_until > now and not force:
        text = (
            f"a worker is running hop {record.hop_seq} now (lease {age(record.hop_until - now)} left); wait, or --force"
        )
        return FailResult(target, task, "refused", text)
    outcome = Outcome.failed(reason, f"operator {operator}", vendor_task_id=msg.vendor_task_id or None)
    report = _report_hop(msg, record)
    stored = record.outcome if record is not None and record.outcome is not None else outcome
    if not dry_run:
        stored = ledger.record_outcome(task, outcome, now, user_id=msg.user_id, report_message=report.dumps())
        queue.send(report.dumps())
    if stored != outcome:
        text = (
            f"task already had the outcome {stored.status.value} {stored.error_reason or ''}".rstrip()
            + f": that outcome is what {'would be' if dry_run else 'is'} reported, not {reason.value}"
        )
        return FailResult(target, task, "kept_outcome", text, stored.status.value, stored.error_reason)
    verb = "would report" if dry_run else "report sent:"
    return FailResult(target, task, "reported", f"{verb} failed {reason.value}", "failed", reason.value)


def _report_hop(msg: JobMessage, record: TaskRecord | None) -> JobMessage:
    """The REPORT hop, numbered after every hop the ledger has seen (so it is never dropped as stale)."""
    seen = max(msg.seq, record.seq, record.hop_seq) if record is not None else msg.seq
    return msg.replace(seq=seen + 1, stage=Stage.REPORT, attempt=0, not_before=None)


def _base_message(record: TaskRecord, now: float) -> JobMessage:
    """A message of the task to derive its REPORT from: the one its outcome owes, else one built from the record
    (a REPORT only needs the task and its user; pipeline and input are placeholders the report step never reads)."""
    if record.report_message:
        try:
            return parse(record.report_message)
        except PoisonMessage:  # written by an older version: build one below
            pass
    assert record.user_id is not None
    return JobMessage(
        task_id=record.task_id,
        user_id=record.user_id,
        pipeline="operator",
        stage=Stage.REPORT,
        input=InputObject(bucket="operator", key=f"operator/{record.task_id}", size=0),
        vendor_task_id=record.vendor_task_id,
        seq=max(record.seq, record.hop_seq, 0),
        created_at=record.created_at or now,
        deadline_at=record.deadline_at or now,
    )
