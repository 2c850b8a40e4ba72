"""``scf-relay package``: build ``dist/scf/producer_shim.zip`` and ``dist/scf/consumer.zip`` for SCF Python 3.10.

The build itself is :mod:`scf_relay.function_zips`; this module parses options and prints the size report.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from scf_relay.cli.output import console, emit_json, err_console, fail, table

MIB = 1024 * 1024


def package(
    out: Path = typer.Option(Path("dist/scf"), "--out", help="where the zips and their unzipped trees go"),
    with_: str = typer.Option(
        "cloud,redis", "--with", help="extras: cloud (CMQ, COS, Tencent moderation, nudge), redis; '' for none"
    ),
    only: list[str] = typer.Option(None, "--only", help="build only this function (repeatable)"),
    no_compile: bool = typer.Option(False, "--no-compile", help="ship no bytecode (slower cold starts)"),
    pip_args: str = typer.Option("", "--pip-args", help="extra pip arguments, e.g. '--index-url https://...'"),
    offline_wheels: Path = typer.Option(
        None, "--offline-wheels", help="install only from wheels in this folder (pip --no-index --find-links)"
    ),
    python: str = typer.Option(None, "--python", help="the Python 3.10 interpreter to run pip and compileall"),
    pipelines: Path = typer.Option(
        None, "--pipelines", help="a pipelines.toml to ship instead of the packaged one (checked before the build)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Build the SCF code packages (zip + unzipped tree per function) and print their sizes."""
    from scf_relay.function_zips import FUNCTIONS, BuildOptions, PackagingError, build

    options = BuildOptions(
        out_dir=out,
        functions=tuple(only) if only else tuple(FUNCTIONS),
        extras=tuple(e.strip() for e in with_.split(",") if e.strip()),
        compile=not no_compile,
        pip_args=tuple(shlex.split(pip_args)),
        offline_wheels=offline_wheels,
        python=python,
        pipelines=pipelines,
    )
    try:
        reports = build(options, progress=lambda line: None if as_json else err_console.print(line))
    except PackagingError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, "packages": [r.as_dict() for r in reports]})
        return
    rows = [
        (
            r.function,
            f"{r.compressed_bytes / MIB:.1f}",
            f"{r.uncompressed_bytes / MIB:.1f}",
            r.files,
            "yes" if r.compiled else "NO",
            ", ".join(f"{b['name']} {int(b['bytes']) / MIB:.1f}" for b in r.biggest[:5]),
        )
        for r in reports
    ]
    table("SCF packages", ["function", "zip MiB", "unzipped MiB", "files", "bytecode", "biggest (MiB)"], rows)
    for r in reports:
        console.print(f"{r.zip_path} (unzipped: {r.tree_path}/), handler {r.handler}")
    console.print("next: `scf deploy` in deploy/<function>/ (docs/deploy.md)")
