"""The performance targets, each as the ratio a benchmark of this run measured: read from ``bench/results/``.

    python -m bench.targets [--json]

Runs last in ``python -m bench.run`` (``make bench``), which sets ``BENCH_RUN_STARTED``: only results written
since then count, so every row comes from the same run and a benchmark that did not run leaves no row (or says
so) instead of an older number. Writes ``targets.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bench import RESULTS_DIR

RESULTS_PATH = RESULTS_DIR / "targets.json"


def _load(name: str, since: float) -> dict[str, Any] | None:
    """``name``'s results if they were written at or after ``since`` (unix seconds), else ``None``."""
    path = RESULTS_DIR / name
    if not path.exists() or path.stat().st_mtime < since:
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _row(target: str, measured: str, ratio: float | None, limit: str, met: bool | None) -> dict[str, Any]:
    return {"target": target, "measured": measured, "ratio": ratio, "limit": limit, "met": met}


def rows(since: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    peers = _load("peers.json", since)
    if peers is None or "scf-relay/dramatiq" not in peers.get("ratios", {}):
        out.append(_row("Redis worker vs Dramatiq", "not run (needs the bench extra)", None, "", None))
    else:
        ratios, medians = peers["ratios"]["scf-relay/dramatiq"], peers["medians"]
        for metric, better, label in (
            ("tasks_per_s", "high", "throughput"),
            ("cpu_ms_per_task", "low", "worker CPU per task"),
            ("commands_per_task", "low", "Redis commands per task incl. Lua"),
        ):
            for run in ("n200", "n1000", "instant"):
                key = f"{metric} {run}"
                if key not in ratios:
                    continue
                ratio = ratios[key]
                met = ratio >= 1.0 if better == "high" else ratio <= 1.0
                ours, theirs = medians["scf-relay"].get(key), medians["dramatiq"].get(key)
                limit = "≥ 1.0" if better == "high" else "≤ 1.0"
                out.append(_row(f"{label} vs Dramatiq ({run})", f"{ours} vs {theirs}", ratio, limit, met))
        idle = medians["scf-relay"].get("idle_commands_per_s")
        workers = peers.get("setup", {}).get("processes", 2)
        if idle is not None:
            per_worker = round(idle / workers, 2)
            out.append(_row("idle worker, Redis commands/s incl. Lua", f"{per_worker}", None, "≤ 5", per_worker <= 5))
    store = _load("store_ops.json", since)
    if store is not None:
        files = store["effects_per_task"]["store"]["files created"]
        plain = store["effects_per_task"]["plain"]["files created"]
        out.append(
            _row(
                "local store: files created per 12-result task",
                f"{files} (plain files: {plain})",
                round(files / plain, 2),
                "1 per object",
                files <= plain,
            )
        )
    relay = _load("relay_speed.json", since)
    if relay is not None:
        ratio = relay["ratio_relay_over_plain"]
        out.append(_row("relay speed vs plain httpx download", f"{relay['mb']} MB", ratio, "≥ 0.8", ratio >= 0.8))
    cold = _load("cold_start.json", since)
    if cold is not None:
        entries = cold["modes"]["pyc"]["entries"]
        for entry, limit_ms in (("producer_shim.index", 100.0), ("consumer.index", 200.0)):
            over = entries[entry]["wall_ms_over_baseline"]
            out.append(
                _row(
                    f"cold import {entry} (pyc), over bare Python",
                    f"{over} ms",
                    round(over / limit_ms, 2),
                    f"≤ {limit_ms:.0f} ms",
                    over <= limit_ms,
                )
            )
    for name, clock in (("webhook_latency.json", "virtual"), ("webhook_latency_real.json", "wall")):
        latency = _load(name, since)
        if latency is None:
            continue
        hooked = next(m for m in latency["modes"] if m["mode"] == "webhook")
        polled = next(m for m in latency["modes"] if m["mode"] == "polling")
        p95, queries = hooked["latency_p95_s"], hooked["queries_per_task"]
        out.append(
            _row(
                f"webhook detection p95 ({clock} clock, {latency['job_s']:g} s jobs)",
                f"{p95} s (polling: {polled['latency_p95_s']} s)",
                None,
                "≤ 2 s",
                p95 <= 2.0,
            )
        )
        out.append(
            _row(
                f"status queries per task with webhooks ({clock} clock)",
                f"{queries} (polling: {polled['queries_per_task']})",
                None,
                "≤ 1.2",
                queries <= 1.2,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--since",
        type=float,
        default=float(os.environ.get("BENCH_RUN_STARTED", 0)),
        help="unix time; older results are ignored",
    )
    args = parser.parse_args(argv)
    table = rows(args.since)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"at": time.time(), "targets": table}, indent=2, ensure_ascii=False))
    if args.json:
        print(json.dumps(table, ensure_ascii=False))
        return 0
    for row in table:
        verdict = {True: "met", False: "NOT met", None: "-"}[row["met"]]
        ratio = "" if row["ratio"] is None else f"  ratio {row['ratio']}"
        print(f"{verdict:8} {row['target']}: {row['measured']}{ratio}  (target {row['limit']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
