"""What the ``dlq`` commands share: the filter options, choosing letters (ids, prefixes, --all, filters) and the
compact 80-column table."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.table import Table

from scf_relay.cli.context import CONFIG, NOTHING, Ops
from scf_relay.operations.letters import Filters, LetterView, read_all, resolve, select, short_ids
from scf_relay.operations.timefmt import age, parse_duration, parse_instant

JSON = typer.Option(False, "--json", help="print JSON (schema: docs/runbook.md#json-output)")
REASON = typer.Option(None, "--reason", help="reason text or class contains this (any case)")
STAGE = typer.Option(None, "--stage", help="submit | poll | collect | audit | report")
PIPELINE = typer.Option(None, "--pipeline", help="only this pipeline's letters")
USER = typer.Option(None, "--user", help="only this user's letters")
TASK = typer.Option(None, "--task", help="only this task's letters (a task id or its prefix)")
OLDER = typer.Option(None, "--older-than", help="dead longer ago than this (90s, 15m, 2h, 1d)")
SINCE = typer.Option(None, "--since", help="dead since this (ISO UTC time, or a duration: 2h = the last 2 hours)")
ALL = typer.Option(False, "--all", help="every dead letter")
YES = typer.Option(False, "--yes", help="do not ask for confirmation")
FAIL_REASON = typer.Option(
    "处理失败", "--reason", help="reported to the user: 生成失败|生成超时|输入文件无效|内容违规|处理失败"
)
DRY = typer.Option(False, "--dry-run", help="check and predict; change nothing")


def filters(
    ops: Ops,
    reason: str | None,
    stage: str | None,
    pipeline: str | None,
    user: str | None,
    task: str | None,
    older_than: str | None,
    since: str | None,
) -> Filters:
    """The filters the options name; a malformed duration or time ends the command (exit 2)."""
    try:
        before = ops.now - parse_duration(older_than) if older_than else None
        after = parse_instant(since, ops.now) if since else None
    except ValueError as exc:
        ops.fail(str(exc), CONFIG)
    return Filters(reason, stage, pipeline, user, task, before, after)


def choose(ops: Ops, ids: Sequence[str] | None, all_: bool, chosen: Filters) -> list[LetterView]:
    """The letters a command acts on: named ids (unique prefixes accepted), narrowed by filters; or ``--all``
    narrowed by filters; or the filters alone. Exit 2 when nothing names letters, 1 when none match."""
    if not ids and not all_ and chosen.empty:
        ops.fail("name dead letter ids, or pass --all or a filter (--reason, --stage, --task, ...)", CONFIG)
    if ids and all_:
        ops.fail("name ids or pass --all, not both", CONFIG)
    views = read_all(ops.admin)
    picked = resolve(list(ids), views) if ids else views
    picked = select(picked, chosen)
    if not picked:
        ops.fail("no dead letter matches (see `scf-relay dlq list`)", NOTHING)
    return picked


def letters_table(title: str, views: Sequence[LetterView], now: float, *, wide: bool = False) -> Table:
    """Short ids, ages, stage, task and the reason cut to the width (``wide``: full ids, reasons wrapped)."""
    short = short_ids([v.message_id for v in views])
    t = Table(title=title, title_justify="left", expand=not wide, pad_edge=False, box=None, header_style="bold")
    t.add_column("id", no_wrap=True)
    t.add_column("age", no_wrap=True, justify="right")
    t.add_column("stage", no_wrap=True)
    t.add_column("task", no_wrap=not wide, overflow="ellipsis", max_width=None if wide else 14)
    t.add_column("rx", no_wrap=True, justify="right")
    t.add_column("reason", no_wrap=not wide, overflow="fold" if wide else "ellipsis", ratio=1, min_width=20)
    for v in views:
        t.add_row(
            v.message_id if wide else short[v.message_id],
            age(now - v.letter.dead_at),
            v.stage or "-",
            v.task_id or "-",
            str(v.letter.receive_count),
            v.letter.reason,
        )
    return t
