"""``scf-relay queue stats | peek``: how full the queue is, and what is next in it."""

from __future__ import annotations

import time
from typing import Any, cast

import typer
from rich.table import Table

from scf_relay.cli.context import Ops
from scf_relay.cli.dlq_common import JSON, YES
from scf_relay.cli.output import console
from scf_relay.operations.timefmt import age, utc

app = typer.Typer(no_args_is_help=True, help="Queue statistics and a look at the next messages.")

CMQ_NO_STATS = (
    "CMQ gives no counts on the data plane: add api_region=<region, e.g. ap-guangzhou> to RELAY_QUEUE to read the "
    "control plane's (refreshed periodically, not exact)"
)
CMQ_LIMITS = (
    "CMQ cannot tell message ages, stages or pipelines without receiving the messages; the dead count is the "
    "dead-letter queue's own"
)


def _stats(ops: Ops) -> dict[str, Any]:
    from scf_relay.operations.letters import read_all

    cmq = ops.queue_url.startswith("cmq:")
    source = ops.admin.stats_source()
    oldest: float | None = None
    out: dict[str, Any] = {"backend": ops.queue_url.split(":", 1)[0], "at_utc": utc(time.time()), "notes": []}
    if source is None:
        out |= {"ready": None, "delayed": None, "in_flight": None, "dead": None}
        out["notes"].append(CMQ_NO_STATS)
    else:
        s = source.stats()
        oldest = s.oldest_enqueued_at
        out |= {"ready": s.ready, "delayed": s.delayed, "in_flight": s.in_flight, "dead": s.dead}
    out["oldest_waiting_utc"] = None if oldest is None else utc(oldest)
    out["oldest_waiting_age"] = "unknown" if oldest is None else age(time.time() - oldest)
    out["oldest_dead_utc"] = out["oldest_dead_age"] = None
    if cmq:
        out["notes"].append(CMQ_LIMITS)
    else:  # looking changes nothing here
        views = read_all(ops.admin)
        if views:
            first_dead = min(v.letter.dead_at for v in views)
            out["oldest_dead_utc"], out["oldest_dead_age"] = utc(first_dead), age(time.time() - first_dead)
        out["dead_by_stage"] = _count(v.stage or "-" for v in views)
        out["dead_by_pipeline"] = _count(v.pipeline or "-" for v in views)
        out["notes"].append(
            "oldest waiting: the oldest ready or delayed message (on Redis the next in line); stages and "
            "pipelines of live messages: see peek"
        )
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


@app.command()
def stats(
    watch: bool = typer.Option(False, "--watch", help="refresh until Ctrl-C"),
    interval: float = typer.Option(2.0, min=0.2, help="seconds between refreshes with --watch"),
    as_json: bool = JSON,
) -> None:
    """Ready, delayed, in flight and dead messages; the oldest dead letter; dead letters by stage and pipeline.
    Says plainly what the backend cannot tell (CMQ)."""
    with Ops("queue stats", as_json) as ops:
        try:
            while True:
                data = _stats(ops)
                if as_json:
                    ops.emit(data)
                else:
                    _print_stats(data)
                if not watch:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def _print_stats(data: dict[str, Any]) -> None:
    def n(key: str) -> str:
        return "?" if data[key] is None else str(data[key])

    line = f"{data['at_utc']}  ready {n('ready')}  delayed {n('delayed')}  in flight {n('in_flight')}  dead {n('dead')}"
    line += f"  oldest waiting {data['oldest_waiting_age']}"
    if data["oldest_dead_age"]:
        line += f"  oldest dead {data['oldest_dead_age']}"
    console.print(line, highlight=False)
    for key in ("dead_by_stage", "dead_by_pipeline"):
        if data.get(key):
            console.print(f"  {key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in data[key].items()))
    for note in data["notes"]:
        console.print(f"[dim]  note: {note}[/]", highlight=False)


@app.command()
def peek(
    limit: int = typer.Option(5, min=1, max=16, help="how many ready (then delayed) messages to look at"),
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """The next messages, decoded. SQLite and Redis read them without touching them; CMQ can only look by
    receiving (each one is hidden for the visibility timeout and its receive count rises): asks first."""
    from jobqueue.queue.base import Peekable

    with Ops("queue peek", as_json) as ops:
        admin = getattr(ops.admin, "_target", ops.admin)
        if isinstance(admin, Peekable):
            rows = [_peeked_row(p) for p in cast(Any, ops.admin).peek(limit)]  # guarded: errors become one line
            side_effects = False
        else:
            ops.confirm(CMQ_PEEK_COST.format(limit=limit), yes)
            rows = [_received_row(r) for r in ops.queue.receive(limit, visibility_timeout_s=30)]
            side_effects = True
        if as_json:
            ops.emit({"count": len(rows), "side_effects": side_effects, "messages": rows})
            return
        _print_peek(rows, side_effects)


CMQ_PEEK_COST = (
    "on CMQ a look is a receive: each of up to {limit} messages is hidden from workers for 30 s and its receive "
    "count rises by one (toward the dead-letter threshold). Look"
)


def _decoded(message_id: str, body: str, enqueued_at: float, receive_count: int) -> dict[str, Any]:
    from jobqueue.queue.base import DeadLetter
    from scf_relay.operations.letters import LetterView

    row = LetterView.of(DeadLetter(message_id, body, "", enqueued_at, receive_count)).to_json(time.time())
    for key in ("reason", "reason_class", "dead_at", "dead_at_utc"):
        row.pop(key)
    return {**row, "enqueued_at_utc": utc(enqueued_at), "body": body}


def _peeked_row(p: Any) -> dict[str, Any]:
    row = _decoded(p.message_id, p.body, p.enqueued_at, p.receive_count)
    row["state"] = p.state
    row["visible_at_utc"] = None if p.visible_at is None else utc(p.visible_at)
    return row


def _received_row(r: Any) -> dict[str, Any]:
    return {**_decoded(r.message_id, r.body, r.enqueued_at, r.receive_count), "state": "received by this look"}


def _print_peek(rows: list[dict[str, Any]], side_effects: bool) -> None:
    t = Table(title=f"next messages: {len(rows)}", title_justify="left", box=None, header_style="bold")
    for column in ("id", "state", "age", "stage", "task", "pipeline", "rx"):
        t.add_column(column, no_wrap=True, overflow="ellipsis", max_width=20)
    for row in rows:
        t.add_row(
            row["message_id"],
            row["state"],
            age(row["age_s"]),
            row["stage"],
            row["task_id"],
            row["pipeline"],
            str(row["receive_count"]),
        )
    console.print(t)
    if not rows:
        console.print("nothing ready or delayed (in-flight messages are not shown)")
    if side_effects:
        console.print("[dim]  note: these messages were received by this look; they come back after 30 s[/]")
