"""``scf-relay doctor`` and ``scf-relay pipelines check``: one row per check, ``--json``; exit 0 when nothing
failed, 1 when a check failed (its row names the fix), 2 when the settings themselves do not load."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from scf_relay.cli.output import console, emit_json, fail, table

if TYPE_CHECKING:
    from relay_core.settings import RelaySettings
    from scf_relay.doctor.rows import Row

JSON = typer.Option(False, "--json", help="machine-readable output")
pipelines_app = typer.Typer(help="Pipelines: check them against RunningHub before any deploy.", no_args_is_help=True)
_COLOURS = {"pass": "green", "fail": "red", "unknown": "yellow"}


def doctor(as_json: bool = JSON) -> None:
    """Read-only (or self-cleaning) checks of the configured environment: queues, COS, moderation,
    RunningHub, backend. Each row: pass, fail with the fix, or unknown with why."""
    from scf_relay.doctor.run import run_checks

    _show("scf-relay doctor", run_checks(_settings(as_json)), as_json)


@pipelines_app.command("check")
def pipelines_check(as_json: bool = JSON) -> None:
    """The pipelines file loads, the RunningHub key is valid, and what can be told of each pipeline's ids."""
    from scf_relay.doctor.vendor import pipeline_rows

    _show("scf-relay pipelines check", pipeline_rows(_settings(as_json)), as_json)


def _settings(as_json: bool) -> RelaySettings:
    from relay_core.errors import ConfigError
    from relay_core.settings import load

    try:
        return load()
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)


def _show(title: str, rows: list[Row], as_json: bool) -> None:
    from scf_relay.doctor.run import exit_code

    code = exit_code(rows)
    if as_json:
        emit_json({"ok": code == 0, "checks": [row.as_dict() for row in rows]})
    else:
        cells = [[row.check, f"[{_COLOURS[row.verdict.value]}]{row.verdict.value}[/]", row.detail] for row in rows]
        table(title, ["check", "result", "detail / fix"], cells)
        failed = sum(row.verdict.value == "fail" for row in rows)
        console.print(f"{failed} failed, {len(rows)} checks")
    raise typer.Exit(code)
