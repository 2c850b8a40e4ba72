"""``scf-relay audit``: the trail of state-changing operator commands, newest first."""

from __future__ import annotations

import typer
from rich.table import Table

from scf_relay.cli.context import Ops
from scf_relay.cli.dlq_common import JSON
from scf_relay.cli.output import console
from scf_relay.operations.timefmt import age, utc


def audit(limit: int = typer.Option(50, min=1, help="newest entries to show"), as_json: bool = JSON) -> None:
    """Who redrove, failed or purged what, when, and with which result (kept beside the ledger)."""
    with Ops("audit", as_json) as ops:
        entries = ops.trail.recent(limit)
        if as_json:
            rows = [{**vars(e), "at_utc": utc(e.at)} for e in entries]
            ops.emit({"where": ops.trail.where, "count": len(rows), "entries": rows})
            return
        t = Table(title=f"audit trail ({ops.trail.where})", title_justify="left", box=None, header_style="bold")
        for column in ("when", "who", "command", "result", "counts", "ids"):
            t.add_column(column, overflow="fold", no_wrap=column in ("when", "result"))
        for e in entries:
            counts = " ".join(f"{k}={v}" for k, v in e.counts.items())
            ids = ", ".join(i[:12] for i in e.ids[:6]) + (f" +{len(e.ids) - 6}" if len(e.ids) > 6 else "")
            t.add_row(f"{utc(e.at)} ({age(ops.now - e.at)} ago)", e.operator, e.command, e.result, counts, ids)
        console.print(t)
