"""Printing for the CLI: JSON on stdout for ``--json``, rich tables otherwise; errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console()
if not console.is_terminal:  # piped or under make: do not fold tables to 80 columns
    console = Console(width=160)
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, show_lines=False)
    for column in columns:
        t.add_column(column, overflow="ellipsis", no_wrap=True)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def fail(message: str, *, as_json: bool = False, code: int = 2) -> NoReturn:
    """Exit with one clear line (and a JSON error object with ``--json``)."""
    if as_json:
        emit_json({"ok": False, "error": message})
    else:
        err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
