"""``scf-relay dlq``: list, show, redrive and fail dead letters of the configured queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from scf_relay.cli.output import console, emit_json, fail, table

if TYPE_CHECKING:
    from jobqueue.ledger.base import Ledger
    from jobqueue.queue.base import Queue, QueueAdmin
    from relay_core.settings import RelaySettings

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="Inspect and act on the dead-letter queue.")
JSON = typer.Option(False, "--json", help="print JSON instead of tables")


def _opened(as_json: bool, opener: Callable[[RelaySettings], T]) -> T:
    """``opener(settings)``; a configuration error ends the command with one line naming the variable."""
    from relay_core.errors import ConfigError
    from relay_core.settings import load

    try:
        return opener(load())
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)


def _backends(as_json: bool) -> tuple[QueueAdmin, Ledger]:
    """The queue's operator plane (dead letters) and the ledger."""
    from jobqueue import open_ledger, open_queue_admin

    return _opened(
        as_json,
        lambda s: (
            open_queue_admin(s.queue_url(), max_receive_count=s.max_receive_count),
            open_ledger(s.ledger_url()),
        ),
    )


def _data_plane(as_json: bool) -> Queue:
    """The queue itself, to send on."""
    from jobqueue import open_queue

    return _opened(as_json, lambda s: open_queue(s.queue_url(), max_receive_count=s.max_receive_count))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command("list")
def list_(
    limit: int = typer.Option(100, min=1),
    task: str = typer.Option(None, help="only this task's letters"),
    as_json: bool = JSON,
) -> None:
    """Dead letters with their reasons (reading a CMQ dead-letter queue increments its receive counts)."""
    from scf_relay.operator_actions import list_dead

    admin, _ = _backends(as_json)
    views = list_dead(admin, limit, task)
    if as_json:
        emit_json([vars(v) for v in views])
        return
    rows = [(v.message_id, v.task_id, v.stage, _when(v.dead_at), v.receive_count, v.reason) for v in views]
    table(f"dead letters ({len(views)})", ["id", "task", "stage", "dead at", "receives", "reason"], rows)


@app.command()
def show(message_id: str, as_json: bool = JSON) -> None:
    """One dead letter with its full body."""
    admin, _ = _backends(as_json)
    letter = admin.dead_letter_by_id(message_id)
    if letter is None:
        fail(f"no dead letter {message_id} (see `scf-relay dlq list`)", as_json=as_json, code=1)
    data = {**vars(letter), "dead_at_utc": _when(letter.dead_at)}
    emit_json(data) if as_json else console.print(data)


@app.command()
def redrive(
    message_ids: list[str] = typer.Argument(None, help="ids to redrive (or --all)"),
    all_: bool = typer.Option(False, "--all", help="redrive every dead letter"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would move, move nothing"),
    rate: float = typer.Option(0.0, help="at most this many per second (0 = no limit)"),
    resubmit: bool = typer.Option(False, help="also clear an ambiguous submit (check the vendor console first)"),
    as_json: bool = JSON,
) -> None:
    """Send dead letters back to the work queue."""
    from scf_relay.operator_actions import redrive as do_redrive

    if not message_ids and not all_:
        fail("name message ids or pass --all", as_json=as_json)
    admin, ledger = _backends(as_json)
    moved = do_redrive(
        admin, ledger, None if all_ else list(message_ids), dry_run=dry_run, rate_per_s=rate, resubmit=resubmit
    )
    result = {"dry_run": dry_run, "count": len(moved), "message_ids": moved}
    emit_json(result) if as_json else console.print(
        f"{'would redrive' if dry_run else 'redrove'} {len(moved)}: {moved}"
    )


@app.command("fail")
def fail_(
    message_ids: list[str] = typer.Argument(..., help="dead letters whose tasks to give up (reported failed)"),
    as_json: bool = JSON,
) -> None:
    """Give up: report the tasks failed (the backend refunds) and drop their dead letters."""
    from scf_relay.operator_actions import fail as do_fail

    admin, ledger = _backends(as_json)
    queue = _data_plane(as_json)
    results = []
    for message_id in message_ids:
        try:
            results.append(do_fail(admin, queue, ledger, message_id))
        except LookupError as exc:
            results.append({"message_id": message_id, "error": str(exc)})
    if as_json:
        emit_json(results)
    else:
        table(
            "failed",
            ["id", "task", "action"],
            [(r["message_id"], r.get("task_id"), r.get("action") or r.get("error")) for r in results],
        )
    if any("error" in r for r in results):
        raise typer.Exit(1)
