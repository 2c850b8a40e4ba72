"""``scf-relay tasks``: what the ledger knows about a task, and which tasks are past their deadline."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import typer

from scf_relay.cli.output import console, emit_json, fail, table

if TYPE_CHECKING:
    from jobqueue.ledger.base import Ledger
    from jobqueue.ledger.record import TaskRecord

app = typer.Typer(no_args_is_help=True, help="Look up tasks in the ledger.")
JSON = typer.Option(False, "--json", help="print JSON instead of tables")


def _ledger(as_json: bool) -> Ledger:
    from jobqueue import open_ledger
    from relay_core.errors import ConfigError
    from relay_core.settings import load

    try:
        return open_ledger(load().ledger_url())
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)


def _record_dict(record: TaskRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["submit_state"] = record.submit_state.value
    if record.outcome is not None:
        data["outcome"] = {**dataclasses.asdict(record.outcome), "status": record.outcome.status.value}
    return data


@app.command()
def show(task_id: str, as_json: bool = JSON) -> None:
    """The ledger record of one task."""
    record = _ledger(as_json).get(task_id)
    if record is None:
        fail(f"task {task_id} is not in the ledger", as_json=as_json, code=1)
    emit_json(_record_dict(record)) if as_json else console.print(_record_dict(record))


@app.command()
def stuck(
    grace_s: float = typer.Option(0.0, help="only tasks whose deadline passed this long ago"),
    report_grace_s: float = typer.Option(900.0, help="only outcomes the backend has not acknowledged for this long"),
    limit: int = typer.Option(100, min=1),
    as_json: bool = JSON,
) -> None:
    """Tasks past their deadline with no outcome, and outcomes the backend never acknowledged (their report is
    re-sent by the consumer's sweep after RELAY_REPORT_SWEEP_AFTER_S; a dead-lettered one is in `scf-relay dlq
    list`)."""
    ledger = _ledger(as_json)
    now = time.time()
    late = [(r, "past deadline, no outcome") for r in ledger.open_tasks(now - grace_s, limit)]
    unreported = [(r, "outcome not reported") for r in ledger.unreported(now - report_grace_s, limit)]
    found = late + unreported
    if as_json:
        emit_json([{**_record_dict(r), "stuck_because": why} for r, why in found])
        return
    rows = [
        (
            r.task_id,
            why,
            r.submit_state.value,
            r.vendor_task_id,
            round(now - (r.deadline_at if r.outcome is None else r.outcome_at or now)),
        )
        for r, why in found
    ]
    table(f"stuck tasks ({len(found)})", ["task", "stuck because", "submit", "vendor task", "for s"], rows)
