"""What finds a task's job in the vendor's console: when it was submitted, the pipeline's workflow or app id,
the vendor task id and the uploaded file's name.

The pipeline name travels in every message of the task; the ledger keeps the first POLL message (and the REPORT
message an outcome owes), and a dead letter carries one too. The workflow or app id comes from pipelines.toml.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scf_relay.operations.timefmt import utc

if TYPE_CHECKING:
    from jobqueue.ledger.record import TaskRecord
    from jobqueue.message import JobMessage


def first_message(bodies: Iterable[str | None]) -> JobMessage | None:
    """The first body that parses as a job message, or None."""
    from jobqueue.errors import PoisonMessage
    from jobqueue.message import parse

    for body in bodies:
        if not body:
            continue
        try:
            return parse(body)
        except PoisonMessage:  # unreadable: the next body may tell
            continue
    return None


def vendor_job(record: TaskRecord | None, dead_bodies: Iterable[str], pipelines: Path | None) -> dict[str, Any]:
    """The stable JSON block ``vendor_job`` of ``tasks show`` (docs/runbook.md); None where nothing tells."""
    bodies = [record.poll_message, record.report_message] if record else []
    msg = first_message([*bodies, *dead_bodies])
    submitted = record.submitted_at if record else None
    out: dict[str, Any] = {
        "submitted_at": submitted,
        "submitted_at_utc": utc(submitted) if submitted else None,
        "vendor_task_id": (record.vendor_task_id if record else None) or (msg.vendor_task_id if msg else None),
        "pipeline": msg.pipeline if msg else None,
        "vendor": None,
        "kind": None,
        "target_id": None,
        "input_file": msg.input.key.rsplit("/", 1)[-1] if msg else None,
        "input_key": msg.input.key if msg else None,
        "adopted_from_webhook_at": record.adopted_at if record else None,
        "adopted_from_webhook_at_utc": utc(record.adopted_at) if record and record.adopted_at else None,
        "other_jobs": _other_jobs(record),
        "note": None,
    }
    if msg is None:
        out["note"] = "no message of the task is known (no POLL hop recorded, no dead letter): pipeline unknown"
        return out
    from relay_core.errors import ConfigError
    from relay_core.pipelines import load_pipelines

    try:
        pipeline = load_pipelines(pipelines).pipelines.get(msg.pipeline)
    except ConfigError as exc:
        out["note"] = f"pipelines file unreadable (RELAY_PIPELINES): {exc}"
        return out
    if pipeline is None:
        out["note"] = f"pipeline {msg.pipeline!r} is not in the pipelines file (RELAY_PIPELINES)"
    else:
        out |= {"vendor": pipeline.vendor, "kind": pipeline.kind, "target_id": pipeline.target_id}
    return out


def _other_jobs(record: TaskRecord | None) -> list[dict[str, str]]:
    """The task's vendor jobs besides the one it uses: ``cancelled`` (another finished first) or ``unused``."""
    if record is None:
        return []
    cancelled = [{"vendor_task_id": v, "state": "cancelled"} for v in record.cancelled_vendor_ids]
    return cancelled + [{"vendor_task_id": v, "state": "unused"} for v in record.webhook_vendor_ids]


def _unknown_submission(job: dict[str, Any]) -> str:
    if job["adopted_from_webhook_at_utc"]:
        return f"- (the create's answer was lost; its webhook named the job at {job['adopted_from_webhook_at_utc']})"
    return "- (no vendor task id recorded)"


def vendor_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    """Field / value rows of :func:`vendor_job` for the human block."""
    kind = {"workflow": "workflow id", "ai-app": "app id"}.get(job["kind"] or "", "workflow/app id")
    rows = [
        ("submitted", job["submitted_at_utc"] or _unknown_submission(job)),
        ("pipeline", job["pipeline"] or "- (unknown)"),
        (kind, f"{job['target_id']} ({job['vendor']})" if job["target_id"] else "-"),
        ("uploaded file", job["input_file"] or "-"),
    ]
    if job["note"]:
        rows.append(("note", job["note"]))
    return rows
