"""``scf-relay queue stats | peek``: how full the queue is, and what is next in it."""

from __future__ import annotations

import time
from typing import Any

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
    out: dict[str, Any] = {"backend": ops.queue_url.split(":", 1)[0], "at_utc": utc(time.time()), "notes": []}
    if source is None:
        out |= {"ready": None, "delayed": None, "in_flight": None, "dead": None}
        out["notes"].append(CMQ_NO_STATS)
    else:
        s = source.stats()
        out |= {"ready": s.ready, "delayed": s.delayed, "in_flight": s.in_flight, "dead": s.dead}
    out["oldest_dead_utc"] = out["oldest_dead_age"] = None
    if cmq:
        out["notes"].append(CMQ_LIMITS)
    else:  # looking changes nothing here
        views = read_all(ops.admin)
        if views:
            oldest = min(v.letter.dead_at for v in views)
            out["oldest_dead_utc"], out["oldest_dead_age"] = utc(oldest), age(time.time() - oldest)
        out["dead_by_stage"] = _count(v.stage or "-" for v in views)
        out["dead_by_pipeline"] = _count(v.pipeline or "-" for v in views)
    out["notes"].append("ready/delayed/in-flight ages, stages and pipelines are not indexed by the queue; see peek")
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
    limit: int = typer.Option(5, min=1, max=16, help="how many ready messages to look at"),
    yes: bool = YES,
    as_json: bool = JSON,
) -> None:
    """The next ready messages, decoded. SQLite and Redis hand each back at once, uncounted (a worker may miss
    it for a moment); CMQ can only look by receiving: asks first."""
    from jobqueue.queue.base import DeadLetter, Releasable
    from scf_relay.operations.letters import LetterView

    with Ops("queue peek", as_json) as ops:
        queue = ops.queue
        releasable = isinstance(getattr(queue, "_target", queue), Releasable)
        if not releasable:
            ops.confirm(
                f"on this queue a look receives: each of up to {limit} messages is hidden for the queue's visibility "
                "timeout and its receive count rises by one (toward the dead-letter threshold). Look",
                yes,
            )
        got = queue.receive(limit, visibility_timeout_s=30)
        if releasable:
            for r in got:
                queue.release(r.receipt)  # type: ignore[attr-defined]
        rows = []
        for r in got:
            view = LetterView.of(DeadLetter(r.message_id, r.body, "", r.enqueued_at, r.receive_count))
            rows.append({**view.to_json(time.time()), "enqueued_at_utc": utc(r.enqueued_at), "body": r.body})
        for row in rows:
            for key in ("reason", "reason_class", "dead_at", "dead_at_utc"):
                row.pop(key)
        if as_json:
            ops.emit({"count": len(rows), "released": releasable, "messages": rows})
            return
        t = Table(title=f"next ready messages: {len(rows)}", title_justify="left", box=None, header_style="bold")
        for column in ("id", "age", "stage", "task", "pipeline", "rx"):
            t.add_column(column, no_wrap=True, overflow="ellipsis", max_width=20)
        for row in rows:
            t.add_row(
                row["message_id"],
                age(row["age_s"]),
                row["stage"],
                row["task_id"],
                row["pipeline"],
                str(row["receive_count"]),
            )
        console.print(t)
        if not rows:
            console.print("nothing ready (delayed and in-flight messages are not shown)")
