"""``scf-relay dlq``: list, summary and show dead letters; redrive, fail and purge them (``dlq_actions``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import typer
from rich.table import Table

from scf_relay.cli import dlq_actions
from scf_relay.cli.context import Ops
from scf_relay.cli.dlq_common import (
    JSON,
    OLDER,
    PIPELINE,
    REASON,
    SINCE,
    STAGE,
    TASK,
    USER,
    filters,
    letters_table,
)
from scf_relay.cli.output import console
from scf_relay.cli.records import record_json, record_table
from scf_relay.operations.letters import LetterView, read_all, resolve, select, short_ids
from scf_relay.operations.redrive import predict
from scf_relay.operations.timefmt import age, utc

app = typer.Typer(no_args_is_help=True, help="Inspect and act on the dead-letter queue (runbook: docs/runbook.md).")
app.command("redrive")(dlq_actions.redrive)
app.command("fail")(dlq_actions.fail_)
app.command("purge")(dlq_actions.purge)


@app.command("list")
def list_(
    reason: str = REASON,
    stage: str = STAGE,
    pipeline: str = PIPELINE,
    user: str = USER,
    task: str = TASK,
    older_than: str = OLDER,
    since: str = SINCE,
    limit: int = typer.Option(200, min=1, help="show at most this many (oldest first)"),
    wide: bool = typer.Option(False, "--wide", help="full ids and reasons"),
    as_json: bool = JSON,
) -> None:
    """Dead letters, oldest first: short ids (any unique prefix works as an id), ages, reasons cut to the
    width (full text: `dlq show ID` or --wide). On CMQ a look receives each letter (hides it a few seconds)."""
    with Ops("dlq list", as_json) as ops:
        chosen = filters(ops, reason, stage, pipeline, user, task, older_than, since)
        views = select(read_all(ops.admin), chosen)
        shown = views[:limit]
        if as_json:
            ops.emit({"count": len(views), "letters": [v.to_json(ops.now) for v in shown]})
            return
        title = f"dead letters: {len(views)}" + (f" (first {limit})" if len(views) > limit else "")
        console.print(letters_table(title, shown, ops.now, wide=wide))
        if views and not wide:
            console.print("[dim]full reason, task and next steps: scf-relay dlq show ID[/]")


@app.command()
def summary(as_json: bool = JSON) -> None:
    """Counts by reason class, stage and pipeline, oldest and newest, and the command for each group."""
    with Ops("dlq summary", as_json) as ops:
        views = read_all(ops.admin)
        groups = {
            "reason_class": _groups(views, lambda v: v.reason_class, ops.now, "--reason"),
            "stage": _groups(views, lambda v: v.stage or "-", ops.now, "--stage"),
            "pipeline": _groups(views, lambda v: v.pipeline or "-", ops.now, "--pipeline"),
        }
        if as_json:
            ops.emit({"count": len(views), "groups": groups})
            return
        console.print(f"dead letters: {len(views)}")
        for name, rows in groups.items():
            t = Table(title=f"by {name.replace('_', ' ')}", title_justify="left", box=None, header_style="bold")
            for column in ("group", "count", "oldest", "newest"):
                t.add_column(column, no_wrap=True, justify="right" if column != "group" else "left")
            t.add_column("next", overflow="fold")
            for row in rows:
                t.add_row(*(str(row[k]) for k in ("group", "count", "oldest_age", "newest_age", "command")))
            console.print(t)


_ACTIONS = {
    "poison": "scf-relay dlq purge --reason poison",
    "foreign task": "scf-relay dlq purge --reason 'foreign task'",
    "ambiguous submit": "check the vendor console; scf-relay dlq redrive --reason 'ambiguous submit' --resubmit",
}


def _groups(
    views: list[LetterView], key: Callable[[LetterView], str], now: float, option: str
) -> list[dict[str, object]]:
    buckets: dict[str, list[LetterView]] = defaultdict(list)
    for v in views:
        buckets[key(v)].append(v)
    rows = []
    for group, members in sorted(buckets.items(), key=lambda kv: -len(kv[1])):
        oldest = min(m.letter.dead_at for m in members)
        newest = max(m.letter.dead_at for m in members)
        command = (_ACTIONS.get(group) if option == "--reason" else None) or (
            f"scf-relay dlq redrive {option} '{group}' --dry-run"
        )
        rows.append(
            {
                "group": group,
                "count": len(members),
                "oldest_utc": utc(oldest),
                "oldest_age": age(now - oldest),
                "newest_utc": utc(newest),
                "newest_age": age(now - newest),
                "command": command,
            }
        )
    return rows


@app.command()
def show(
    message_id: str = typer.Argument(..., help="a dead letter id or a unique prefix"), as_json: bool = JSON
) -> None:
    """One dead letter: decoded message, full reason, the task's ledger record and the next commands to run."""
    with Ops("dlq show", as_json) as ops:
        views = read_all(ops.admin)
        [view] = resolve([message_id], views)
        record = ops.ledger.get(view.task_id) if view.task_id else None
        guess = predict(view, record, ops.now, resubmit=False)
        sid = short_ids([v.message_id for v in views])[view.message_id]
        commands = _next_commands(view, sid, guess.verdict)
        if as_json:
            ops.emit(
                {
                    "letter": view.to_json(ops.now),
                    "message": view.message.as_json() if view.message else None,
                    "body": None if view.message else view.letter.body,
                    "problem": view.problem,
                    "task": record_json(record, ops.now) if record else None,
                    "redrive_prediction": {"verdict": guess.verdict, "text": guess.text},
                    "next_commands": commands,
                }
            )
            return
        _print_letter(view, guess.text, ops.now)
        if record is not None:
            console.print(record_table(record, ops.now))
        elif view.task_id:
            console.print(f"task {view.task_id}: not in the ledger (no hop of it ever ran, or the record expired)")
        console.print("[bold]next[/]")
        for command in commands:
            console.print(f"  {command}", highlight=False, soft_wrap=True)


def _print_letter(view: LetterView, prediction: str, now: float) -> None:
    d = view.letter
    t = Table(title=f"dead letter {d.message_id}", title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_row("dead at", f"{utc(d.dead_at)} ({age(now - d.dead_at)} ago), received {d.receive_count} times")
    t.add_row("reason", d.reason)
    t.add_row("class", f"{view.reason_class} (docs/runbook.md)")
    if view.message is not None:
        m = view.message
        t.add_row("task", f"{m.task_id} of user {m.user_id}, pipeline {m.pipeline}")
        t.add_row("hop", f"stage {m.stage.value}, seq {m.seq}, attempt {m.attempt}, polls {m.polls}")
        t.add_row("input", f"{m.input.bucket}/{m.input.key} ({m.input.size} bytes)")
        t.add_row("vendor task", m.vendor_task_id or "-")
        t.add_row("created", f"{utc(m.created_at)} ({age(now - m.created_at)} ago)")
        late = now - m.deadline_at
        t.add_row(
            "deadline", f"{utc(m.deadline_at)} ({'passed ' + age(late) + ' ago' if late >= 0 else 'in ' + age(-late)})"
        )
    else:
        t.add_row("body", d.body[:2000])
        t.add_row("problem", view.problem or "-")
    t.add_row("if redriven", prediction)
    console.print(t)


def _next_commands(view: LetterView, sid: str, verdict: str) -> list[str]:
    task = view.task_id
    if verdict in ("poison", "foreign"):
        return [f"scf-relay dlq purge --yes {sid}   # nothing to run or report"]
    out = []
    if verdict == "bounces":
        out.append(f"check the vendor console for task {task}, then: scf-relay dlq redrive --resubmit {sid}")
    else:
        out.append(f"scf-relay dlq redrive --dry-run {sid}   # then without --dry-run")
    out.append(f"scf-relay dlq fail {sid} --reason 处理失败   # give up: reports failed, the user is refunded")
    if task:
        out.append(f"scf-relay tasks show {task}")
    return out
