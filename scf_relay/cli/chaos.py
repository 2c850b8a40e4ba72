"""``scf-relay chaos``: SIGKILL a worker fleet amid faults, then judge the invariants from outside evidence."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from scf_relay.cli.output import console, emit_json, err_console, fail, table


def chaos(
    n_tasks: int = typer.Option(100, "--tasks", min=1, help="uploads to run through the fleet"),
    seed: int = typer.Option(1, help="the same seed gives the same tasks and the same fault schedule"),
    backend: str = typer.Option("sqlite", help="queue and ledger: sqlite (embedded) or redis"),
    redis_url: str = typer.Option("redis://127.0.0.1:6379/15", help="with --backend redis (a fresh key prefix)"),
    workers: int = typer.Option(2, min=1, max=16, help="worker processes"),
    concurrency: int = typer.Option(4, min=1, max=32, help="threads per worker"),
    kill_min_s: float = typer.Option(0.3, help="shortest pause between two SIGKILLs"),
    kill_max_s: float = typer.Option(2.5, help="longest pause between two SIGKILLs"),
    crash_rate: float = typer.Option(0.01, min=0.0, max=1.0, help="chance a worker dies at each effect boundary"),
    vendor_concurrency: int = typer.Option(12, min=1, help="vendor jobs at once; submits past it are refused (421)"),
    timeout_s: float = typer.Option(600.0, help="give up waiting for the tasks to settle after this long"),
    webhooks: bool = typer.Option(True, help="the vendor calls the webhook route when a job ends"),
    drop_create_rate: float = typer.Option(
        0.05, min=0.0, max=1.0, help="chance a create makes the job and loses its answer (an ambiguous submit)"
    ),
    deadline_s: int = typer.Option(180, min=30, help="every pipeline's deadline (never-finishing jobs: 20 s)"),
    home: Path = typer.Option(Path(".relay/chaos"), help="where the run keeps its queue, ledger, bucket and logs"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Run N uploads through shim, queue and a worker fleet SIGKILLed at random, amid vendor, moderation and
    backend faults; exit 1 on any breach of the invariants (lost, conflicting or doubled reports, double
    submissions, blocked or failed-task files under output/, leftovers in staging/, an ambiguous submit left to
    an operator although its job called the webhook, a reported task with a vendor job nobody read)."""
    from relay_core.errors import ConfigError
    from scf_relay.chaos.run import ChaosOptions, run_chaos

    if backend not in ("sqlite", "redis"):
        fail("--backend must be sqlite or redis", as_json=as_json)
    if not 0 < kill_min_s <= kill_max_s:
        fail("--kill-min-s must be > 0 and at most --kill-max-s", as_json=as_json)
    opts = ChaosOptions(
        tasks=n_tasks,
        seed=seed,
        backend=backend,
        redis_url=redis_url,
        workers=workers,
        concurrency=concurrency,
        kill_every_s=(kill_min_s, kill_max_s),
        crash_rate=crash_rate,
        vendor_concurrency=vendor_concurrency,
        timeout_s=timeout_s,
        home=home,
        webhooks=webhooks,
        drop_create_rate=drop_create_rate,
        deadline_s=deadline_s,
    )
    signal.signal(signal.SIGTERM, _interrupted)  # SIGTERM cleans up like Ctrl-C: workers stopped, keys dropped
    try:
        result = run_chaos(opts, progress=lambda line: err_console.print(f"[dim]chaos:[/] {line}"))
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)
    except KeyboardInterrupt:
        fail("interrupted: the workers were stopped and the run's Redis keys dropped", as_json=as_json, code=130)
    if as_json:
        emit_json(result)
    else:
        _print(result)
    if not result["ok"]:
        raise typer.Exit(1)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _print(result: dict) -> None:
    faults = result["faults"]
    console.print(
        f"[bold]chaos[/] {result['tasks']} tasks on {result['backend']}, seed {result['seed']}, "
        f"{result['elapsed_s']} s — {'[green]no breach' if result['ok'] else '[red]BREACHED'}[/]"
    )
    table("breaches", ["invariant", "tasks"], sorted(result["breaches"].items()))
    table("reports", ["status", "tasks"], sorted(result["reports_by_status"].items()))
    table("dead letters", ["reason", "tasks"], sorted(result["dead_letters_by_reason"].items()))
    table("ambiguous submits left to an operator", ["vendor side", "tasks"], sorted(result["ambiguous"].items()))
    injected = {k: v for k, v in faults.items() if k != "vendor"}
    table("faults injected", ["fault", "count"], sorted((k, v) for k, v in injected.items()))
    if result["unexpected_outcomes"]:
        table(
            "outcomes other than planned (faults)",
            ["kind -> report", "tasks"],
            sorted(result["unexpected_outcomes"].items()),
        )
    for name, ids in result.get("breach_examples", {}).items():
        console.print(f"[red]{name}[/]: {', '.join(ids)}")
    console.print(f"logs and bucket: {result['home']}")
