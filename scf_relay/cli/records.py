"""A task's ledger record for operators: JSON with UTC times and ages, and a human-readable block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from scf_relay.operations.timefmt import age, utc

if TYPE_CHECKING:
    from jobqueue.ledger.record import TaskRecord

_TIMES = (
    "deadline_at",
    "lease_until",
    "hop_until",
    "outcome_at",
    "reported_at",
    "parked_at",
    "submitted_at",
    "created_at",
    "updated_at",
)


def record_json(record: TaskRecord, now: float) -> dict[str, Any]:
    """The stable JSON form: the stored fields, every time also as ``<name>_utc``, plus ``state``."""
    data: dict[str, Any] = {name: getattr(record, name) for name in record.__dataclass_fields__}
    data["submit_state"] = record.submit_state.value
    data.pop("token", None)
    data.pop("report_message", None)
    if record.outcome is not None:
        o = record.outcome
        data["outcome"] = {
            "status": o.status.value,
            "error_reason": o.error_reason,
            "result_keys": list(o.result_keys),
            "vendor_task_id": o.vendor_task_id,
            "detail": o.detail,
        }
    for name in _TIMES:
        value = getattr(record, name)
        data[f"{name}_utc"] = utc(value) if value else None
    data["state"] = state(record, now)
    return data


def state(record: TaskRecord, now: float) -> str:
    """One line on where the task stands."""
    if record.outcome is not None:
        o = record.outcome
        told = f"reported {age(now - record.reported_at)} ago" if record.reported_at else "NOT reported yet"
        return f"{o.status.value}{' ' + o.error_reason if o.error_reason else ''}, {told}"
    if record.parked_at:
        return f"parked in the dead-letter queue for {age(now - record.parked_at)}"
    if record.hop_until > now:
        return f"running hop {record.hop_seq} now"
    if record.deadline_at and record.deadline_at < now:
        return f"no outcome, deadline passed {age(now - record.deadline_at)} ago"
    return "in progress (its next hop is queued or delayed)"


def _when(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    delta = now - ts
    return f"{utc(ts)} ({age(delta)} ago)" if delta >= 0 else f"{utc(ts)} (in {age(-delta)})"


def _vendor_task(record: TaskRecord) -> str:
    if not record.vendor_task_id:
        return "-"
    if record.adopted_at is not None:
        return f"{record.vendor_task_id} (the submit's answer was lost; learned from the vendor's webhook)"
    return record.vendor_task_id


def other_jobs_text(record: TaskRecord) -> str:
    """The task's vendor jobs other than the one it uses, and what became of them ("" when none)."""
    used = record.vendor_task_id or "?"
    parts = [f"{v} (cancelled: {used} finished first)" for v in record.cancelled_vendor_ids]
    parts += [f"{v} (ran too; not used)" for v in record.webhook_vendor_ids]
    return ", ".join(parts)


def record_table(record: TaskRecord, now: float) -> Table:
    """Field / value rows of the record, times as UTC ISO with ages."""
    t = Table(title=f"task {record.task_id}", title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    o = record.outcome
    rows = [
        ("state", state(record, now)),
        ("user", record.user_id or "- (unknown)"),
        ("submit", record.submit_state.value or "not claimed"),
        ("vendor task", _vendor_task(record)),
        *([("other vendor jobs", other)] if (other := other_jobs_text(record)) else []),
        ("created", _when(record.created_at, now)),
        ("submitted", _when(record.submitted_at, now)),
        ("deadline", _when(record.deadline_at, now)),
        ("hops", f"handled up to {record.seq}, last begun {record.hop_seq}"),
        ("outcome", f"{o.status.value} {o.error_reason or ''} {o.detail}".strip() if o else "-"),
        ("results", ", ".join(o.result_keys) if o and o.result_keys else "-"),
        ("outcome at", _when(record.outcome_at, now)),
        ("reported at", _when(record.reported_at, now)),
        ("parked at", _when(record.parked_at, now)),
    ]
    for name, value in rows:
        t.add_row(name, value)
    return t


def fields_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A titled block of field / value rows, like :func:`record_table`."""
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    for name, value in rows:
        t.add_row(name, value)
    return t
