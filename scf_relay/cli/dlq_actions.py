"""``scf-relay dlq redrive | fail | purge``: the state-changing dead-letter commands (each one audited)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from scf_relay.cli.context import CONFIG, NOTHING, Ops
from scf_relay.cli.dlq_common import (
    ALL,
    DRY,
    FAIL_REASON,
    JSON,
    OLDER,
    PIPELINE,
    REASON,
    SINCE,
    STAGE,
    TASK,
    USER,
    YES,
    choose,
    filters,
)
from scf_relay.cli.output import console, err_console
from scf_relay.operations.letters import LetterView, short_ids
from scf_relay.operations.redrive import Prediction, RedriveRun, predict, redrive_letters

IDS = typer.Argument(None, help="dead letter ids or unique prefixes (or --all, or filters)")
PROGRESS_FROM = 20  # show a progress bar from this many letters


def _rate(ops: Ops, text: str) -> float:
    try:
        value = float(text.strip().lower().removesuffix("/s"))
    except ValueError:
        ops.fail(f"--rate {text!r} is not a number of letters per second (5 or 5/s)", CONFIG)
    if value < 0:
        ops.fail("--rate must be >= 0", CONFIG)
    return value


def _predictions(ops: Ops, views: Sequence[LetterView], resubmit: bool) -> list[Prediction]:
    records = {t: ops.ledger.get(t) for t in {v.task_id for v in views if v.task_id}}
    return [predict(v, records.get(v.task_id) if v.task_id else None, ops.now, resubmit=resubmit) for v in views]


def redrive(
    message_ids: list[str] = IDS,
    all_: bool = ALL,
    reason: str = REASON,
    stage: str = STAGE,
    pipeline: str = PIPELINE,
    user: str = USER,
    task: str = TASK,
    older_than: str = OLDER,
    since: str = SINCE,
    dry_run: bool = DRY,
    rate: str = typer.Option("0", help="at most N letters per second (5 or 5/s; 0 = no limit)"),
    resubmit: bool = typer.Option(False, help="also clear an ambiguous submit claim (check the vendor console first)"),
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Send dead letters back to the work queue. --dry-run predicts what each will do (time out, bounce back,
    be dropped as already reported). Unknown ids are an error (exit 1); Ctrl-C stops and says what moved."""
    with Ops("dlq redrive" + (" --dry-run" if dry_run else ""), as_json) as ops:
        per_s = _rate(ops, rate)
        views = choose(ops, message_ids, all_, filters(ops, reason, stage, pipeline, user, task, older_than, since))
        guesses = _predictions(ops, views, resubmit)
        verdicts = dict(Counter(g.verdict for g in guesses))
        if dry_run:
            _show_plan(ops, views, guesses, verdicts)
            return
        if all_ or not message_ids or resubmit:
            what = "clear ambiguous claims (a second vendor job is possible) and " if resubmit else ""
            ops.confirm(f"{what}redrive {len(views)} dead letter(s)", yes)
        run = _run_redrive(ops, views, per_s, resubmit)
        result = "interrupted" if run.interrupted else "partial" if run.missing else "ok"
        counts = {"selected": len(views), "moved": len(run.moved), "missing": len(run.missing)}
        counts |= {"resubmitted": len(run.resubmitted)} if resubmit else {}
        ops.record(run.moved + run.missing, counts, result)
        left = [v.message_id for v in views if v.message_id not in set(run.moved) | set(run.missing)]
        _report_redrive(ops, run, counts, left, result)
        if run.interrupted:
            raise typer.Exit(130)
        if run.missing:
            raise typer.Exit(NOTHING)


def _show_plan(ops: Ops, views: Sequence[LetterView], guesses: Sequence[Prediction], verdicts: dict) -> None:
    if ops.as_json:
        plan = [
            {**v.to_json(ops.now), "verdict": g.verdict, "prediction": g.text}
            for v, g in zip(views, guesses, strict=True)
        ]
        ops.emit({"dry_run": True, "count": len(views), "verdicts": verdicts, "letters": plan})
        return
    short = short_ids([v.message_id for v in views])
    t = Table(title=f"would redrive {len(views)}", title_justify="left", box=None, header_style="bold", expand=True)
    t.add_column("id", no_wrap=True)
    t.add_column("task", no_wrap=True, overflow="ellipsis", max_width=14)
    t.add_column("stage", no_wrap=True)
    t.add_column("then", ratio=1, overflow="fold")
    for v, g in zip(views, guesses, strict=True):
        t.add_row(short[v.message_id], v.task_id or "-", v.stage or "-", g.text)
    console.print(t)
    console.print("by result: " + ", ".join(f"{k} {n}" for k, n in sorted(verdicts.items())), highlight=False)


def _run_redrive(ops: Ops, views: Sequence[LetterView], per_s: float, resubmit: bool) -> RedriveRun:
    if ops.as_json or len(views) < PROGRESS_FROM:
        return redrive_letters(ops.admin, ops.ledger, views, rate_per_s=per_s, resubmit=resubmit)
    columns = (TextColumn("[bold]redriving"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        job = bar.add_task("redrive", total=len(views))
        return redrive_letters(
            ops.admin,
            ops.ledger,
            views,
            rate_per_s=per_s,
            resubmit=resubmit,
            progress=lambda done, total: bar.update(job, completed=done),
        )


def _report_redrive(ops: Ops, run: RedriveRun, counts: dict, left: list[str], result: str) -> None:
    if ops.as_json:
        ops.emit(
            {
                "dry_run": False,
                "result": result,
                "counts": counts,
                "moved": run.moved,
                "missing": run.missing,
                "not_attempted": left,
                "resubmitted_tasks": run.resubmitted,
            },
            ok=result == "ok",
        )
        return
    console.print(f"redrove {len(run.moved)} of {counts['selected']}", highlight=False)
    if run.missing:
        console.print(f"gone before they could move (redriven or removed elsewhere): {', '.join(run.missing)}")
    if run.resubmitted:
        console.print(f"submit claims cleared: {', '.join(run.resubmitted)}")
    if run.interrupted:
        console.print(f"[bold]interrupted[/]: {len(left)} not attempted, still dead: {', '.join(left[:20])}")


def fail_(
    message_ids: list[str] = IDS,
    reason: str = FAIL_REASON,
    all_: bool = ALL,
    dead_reason: str = typer.Option(None, "--dead-reason", help="filter: reason text or class contains this"),
    stage: str = STAGE,
    pipeline: str = PIPELINE,
    user: str = USER,
    task: str = TASK,
    older_than: str = OLDER,
    since: str = SINCE,
    force: bool = typer.Option(False, "--force", help="also fail a task a worker is running right now"),
    dry_run: bool = DRY,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Give up the letters' tasks: record failed with --reason, report through the normal path (the backend
    refunds), drop the letters. A task that already had an outcome keeps it, and that one is reported."""
    from relay_core.domain import ErrorReason
    from scf_relay.operations.audit import operator_name
    from scf_relay.operations.failing import REASONS, FailResult, fail_letter

    with Ops("dlq fail" + (" --dry-run" if dry_run else ""), as_json) as ops:
        if reason not in REASONS:
            ops.fail(f"--reason must be one of {' | '.join(REASONS)}", CONFIG)
        chosen = filters(ops, dead_reason, stage, pipeline, user, task, older_than, since)
        views = choose(ops, message_ids, all_, chosen)
        if not dry_run:
            ops.confirm(f"report {len(views)} task(s) failed {reason} (the users are refunded)", yes)
        results: list[FailResult] = []
        interrupted = False
        try:
            for view in views:
                results.append(
                    fail_letter(
                        ops.admin,
                        ops.queue,
                        ops.ledger,
                        view,
                        ErrorReason(reason),
                        ops.now,
                        operator=operator_name(),
                        force=force,
                        dry_run=dry_run,
                    )
                )
        except KeyboardInterrupt:
            interrupted = True
        finish_fail(ops, results, interrupted, dry_run, len(views))


def finish_fail(ops: Ops, results: list, interrupted: bool, dry_run: bool, selected: int) -> None:
    """Print, audit (unless a dry run) and exit for ``dlq fail`` and ``tasks fail``."""
    bad = [r for r in results if not r.ok]
    result = "interrupted" if interrupted else "partial" if bad else "ok"
    counts = dict(Counter(r.action for r in results)) | {"selected": selected}
    if not dry_run:
        ops.record([r.target for r in results], counts, result)
    if ops.as_json:
        rows = [{**vars(r), "ok": r.ok} for r in results]
        ops.emit({"dry_run": dry_run, "result": result, "counts": counts, "results": rows}, ok=result == "ok")
    else:
        t = Table(title="dry run: nothing changed" if dry_run else "", box=None, header_style="bold", expand=True)
        t.add_column("target", no_wrap=True, max_width=14, overflow="ellipsis")
        t.add_column("task", no_wrap=True, max_width=14, overflow="ellipsis")
        t.add_column("result", no_wrap=True)
        t.add_column("what happened", ratio=1, overflow="fold")
        for r in results:
            t.add_row(r.target, r.task_id or "-", r.action, r.text)
        console.print(t)
        if interrupted:
            console.print(f"[bold]interrupted[/] after {len(results)} of {selected}")
    if interrupted:
        raise typer.Exit(130)
    if bad:
        raise typer.Exit(NOTHING)


def purge(
    message_ids: list[str] = IDS,
    all_: bool = ALL,
    reason: str = REASON,
    stage: str = STAGE,
    pipeline: str = PIPELINE,
    user: str = USER,
    task: str = TASK,
    older_than: str = OLDER,
    since: str = SINCE,
    dry_run: bool = DRY,
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """Drop dead letters for good (poison, foreign tasks, letters already resolved). Nothing is reported.
    Only with --yes or after typing 'purge'."""
    with Ops("dlq purge" + (" --dry-run" if dry_run else ""), as_json) as ops:
        views = choose(ops, message_ids, all_, filters(ops, reason, stage, pipeline, user, task, older_than, since))
        if dry_run:
            if as_json:
                ops.emit({"dry_run": True, "count": len(views), "letters": [v.to_json(ops.now) for v in views]})
            else:
                console.print(f"would purge {len(views)}: {', '.join(v.message_id for v in views)}")
            return
        ops.confirm(f"drop {len(views)} dead letter(s) for good; nothing is reported", yes, typed="purge")
        removed = [v.message_id for v in views if ops.admin.remove_dead(v.message_id)]
        missing = [v.message_id for v in views if v.message_id not in set(removed)]
        result = "partial" if missing else "ok"
        ops.record(
            removed + missing, {"selected": len(views), "removed": len(removed), "missing": len(missing)}, result
        )
        if as_json:
            ops.emit({"result": result, "removed": removed, "missing": missing}, ok=not missing)
        else:
            console.print(f"purged {len(removed)} of {len(views)}" + (f"; already gone: {missing}" if missing else ""))
        if missing:
            raise typer.Exit(NOTHING)
