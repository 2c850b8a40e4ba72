"""``scf-relay tasks``: a task's ledger record with its dead letters, the stuck tasks, and failing a task that
has no dead letter."""

from __future__ import annotations

import typer
from rich.table import Table

from scf_relay.cli.context import CONFIG, NOTHING, Ops
from scf_relay.cli.dlq_common import DRY, FAIL_REASON, JSON, YES, letters_table
from scf_relay.cli.output import console
from scf_relay.cli.records import fields_table, record_json, record_table
from scf_relay.operations.timefmt import age, parse_duration

app = typer.Typer(no_args_is_help=True, help="Look up, list and fail tasks in the ledger (runbook: docs/runbook.md).")


@app.command()
def show(
    task_id: str,
    letters: bool = typer.Option(True, "--letters/--no-letters", help="also list its dead letters (CMQ: a look)"),
    as_json: bool = JSON,
) -> None:
    """The ledger record of one task (state, user, vendor task id, times), and its dead letters."""
    from scf_relay.operations.letters import read_all
    from scf_relay.operations.vendor_job import vendor_job, vendor_rows

    with Ops("tasks show", as_json) as ops:
        record = ops.ledger.get(task_id)
        dead = [v for v in read_all(ops.admin) if v.task_id == task_id] if letters else []
        if record is None and not dead:
            ops.fail(f"task {task_id} is not in the ledger and has no dead letter", NOTHING)
        job = vendor_job(record, [v.letter.body for v in dead], ops.settings.pipelines)
        if as_json:
            ops.emit(
                {
                    "task_id": task_id,
                    "task": record_json(record, ops.now) if record else None,
                    "vendor_job": job,
                    "dead_letters": [v.to_json(ops.now) for v in dead] if letters else None,
                }
            )
            return
        if record is not None:
            console.print(record_table(record, ops.now))
        else:
            console.print(f"task {task_id}: not in the ledger (no hop of it ran yet, or the record expired)")
        console.print(fields_table("in the vendor's console", vendor_rows(job)))
        if dead:
            console.print(letters_table(f"its dead letters: {len(dead)}", dead, ops.now))
            console.print("[dim]next: scf-relay dlq show ID[/]")
        elif letters:
            console.print("no dead letter")


@app.command()
def stuck(
    older_than: str = typer.Option("0s", "--older-than", help="only tasks whose deadline passed this long ago"),
    report_grace: str = typer.Option("15m", help="only outcomes the backend has not acknowledged for this long"),
    limit: int = typer.Option(100, min=1),
    as_json: bool = JSON,
) -> None:
    """Tasks past their deadline with no outcome, and outcomes the backend never acknowledged (the consumer's
    sweep re-sends those after RELAY_REPORT_SWEEP_AFTER_S unless the task is parked in the dead-letter queue)."""
    with Ops("tasks stuck", as_json) as ops:
        try:
            grace, report_s = parse_duration(older_than), parse_duration(report_grace)
        except ValueError as exc:
            ops.fail(str(exc), CONFIG)
        now = ops.now
        late = [(r, "past deadline, no outcome") for r in ops.ledger.open_tasks(now - grace, limit)]
        unreported = [(r, "outcome not reported") for r in ops.ledger.unreported(now - report_s, limit)]
        found = late + unreported
        if as_json:
            ops.emit({"count": len(found), "tasks": [{**record_json(r, now), "stuck_because": w} for r, w in found]})
            return
        t = Table(title=f"stuck tasks: {len(found)}", title_justify="left", box=None, header_style="bold", expand=True)
        for column in ("task", "for", "stuck because", "submit", "vendor task"):
            t.add_column(column, no_wrap=True, overflow="ellipsis")
        for r, why in found:
            since = r.deadline_at if r.outcome is None else r.outcome_at or now
            t.add_row(r.task_id, age(now - since), why, r.submit_state.value or "-", r.vendor_task_id or "-")
        console.print(t)
        if found:
            console.print("[dim]next: scf-relay tasks show TASK; scf-relay tasks fail TASK --reason 处理失败[/]")


@app.command("fail")
def fail_(
    task_ids: list[str] = typer.Argument(..., help="tasks to give up (no dead letter needed)"),
    reason: str = FAIL_REASON,
    force: bool = typer.Option(False, "--force", help="also fail a task a worker is running right now"),
    dry_run: bool = DRY,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Give tasks up: record failed with --reason and send their report through the normal path (refund). For
    tasks without a dead letter (CMQ letters expire); a letter's task is better failed with `dlq fail`."""
    from relay_core.domain import ErrorReason
    from scf_relay.cli.dlq_actions import finish_fail
    from scf_relay.operations.audit import operator_name
    from scf_relay.operations.failing import REASONS, FailResult, fail_task

    with Ops("tasks fail" + (" --dry-run" if dry_run else ""), as_json) as ops:
        if reason not in REASONS:
            ops.fail(f"--reason must be one of {' | '.join(REASONS)}", CONFIG)
        if not dry_run:
            ops.confirm(f"report {len(task_ids)} task(s) failed {reason} (the users are refunded)", yes)
        results: list[FailResult] = []
        interrupted = False
        try:
            for task_id in dict.fromkeys(task_ids):
                results.append(
                    fail_task(
                        ops.queue, ops.ledger, task_id, ErrorReason(reason), ops.now,
                        operator=operator_name(), force=force, dry_run=dry_run,
                    )
                )  # fmt: skip
        except KeyboardInterrupt:
            interrupted = True
        finish_fail(ops, results, interrupted, dry_run, len(task_ids))
