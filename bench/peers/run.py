"""Run the peer comparison: rotated runs, medians, ratios, ``peers.json`` and ``peers.png``."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from bench.peers import procs
from bench.peers.redis_probe import Monitor, PrivateRedis, commands_between, commands_total, server_version
from bench.peers.systems import SYSTEMS, ScfRelay, System, missing_dependencies

RESULTS_PATH = RESULTS_DIR / "peers.json"
CHART_PATH = RESULTS_DIR / "peers.png"
BASELINE = "scf-relay"
JOB_S = 4.0
STATUS_PATH = "/task/openapi/outputs"  # the status query both chains make (vendors.runninghub)
IDLE_SETTLE_S = 2.0  # after the workers are ready, before the idle window opens (at most half the window)


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: int
    job_s: float
    idle_s: float = 0.0  # > 0: measure the idle workers for this long before the tasks go in
    monitor: bool = False  # MONITOR on during the tasks (the sent / incl. Lua split)
    timed: bool = True  # its tasks/s, CPU and command counts go into the medians (not for a MONITOR pass)


def run_once(cls: type[System], scenario: Scenario, redis_url: str, home: Path) -> dict[str, Any]:
    """One system, one scenario: fresh Redis DB, emulator and receiver, workers started and stopped."""
    import redis

    from scf_relay.demo.stack import LocalStack

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    knobs = {"job_s": scenario.job_s, "queue_s": 0.0, "concurrency": 1_000_000, "seed": 7}
    env = ScfRelay.stack_env(redis_url) if cls is ScfRelay else {"RELAY_LOG_LEVEL": "WARNING"}
    row: dict[str, Any] = {"system": cls.name, "scenario": scenario.name, "tasks": scenario.tasks}
    with LocalStack(home / "stack", emulator=knobs, env=env) as stack:
        system = cls(stack, redis_url, home)
        try:
            system.start()
            if scenario.idle_s:
                row.update(_idle(client, redis_url, scenario.idle_s))
            row.update(_tasks(system, stack, client, redis_url, scenario))
        finally:
            row["exit_codes"] = system.stop()
        assert stack.receiver is not None and stack.emulator is not None
        row.update(_check(stack.receiver.by_task(), row.pop("task_ids")))
        row.update(_detection(stack.emulator, stack.receiver.reports, scenario.tasks))
    client.close()
    if not row["ok"]:
        row["log_tail"] = system.log_tail()
    return row


def _idle(client: Any, redis_url: str, idle_s: float) -> dict[str, Any]:
    time.sleep(min(IDLE_SETTLE_S, idle_s / 2))
    with Monitor(redis_url) as monitor:
        before, started = commands_total(client), time.monotonic()
        time.sleep(idle_s)
        after, elapsed = commands_total(client), time.monotonic() - started
    seen = monitor.count()
    return {
        "idle_s": round(elapsed, 2),
        "idle_commands_per_s": round(commands_between(before, after) / elapsed, 2),
        "idle_sent_per_s": round(seen.sent / monitor.elapsed_s, 2),
        "idle_monitor_incl_lua_per_s": round(seen.total / monitor.elapsed_s, 2),
    }


def _tasks(system: System, stack: Any, client: Any, redis_url: str, scenario: Scenario) -> dict[str, Any]:
    n = scenario.tasks
    prepared = system.prepare(n)
    task_ids = list(stack.views) if isinstance(system, ScfRelay) else list(prepared)
    pids = procs.tree(system.roots)
    cpu_before = procs.cpu_s(pids)
    watching = Monitor(redis_url) if scenario.monitor else nullcontext()
    with watching as monitor:
        before, started = commands_total(client), time.monotonic()
        system.enqueue(prepared)
        enqueued_s = time.monotonic() - started
        finished = _wait_reports(stack.receiver, n, timeout_s=60 + n * 0.5)
        elapsed_s = time.monotonic() - started
        after = commands_total(client)
    pids = sorted(set(pids) | set(procs.tree(system.roots)))
    cpu_s = procs.cpu_s(pids)
    rss = [round(procs.peak_rss_mib(pid), 1) for pid in procs.leaves(system.roots)]
    row = {
        "task_ids": task_ids,
        "finished": finished,
        "wall_s": round(elapsed_s, 2),
        "enqueue_s": round(enqueued_s, 2),
        "tasks_per_s": round(n / elapsed_s, 2),
        "cpu_ms_per_task": round((cpu_s - cpu_before) * 1000 / n, 1),
        "commands_per_task": round(commands_between(before, after) / n, 1),
        "processes": len(pids),
        "peak_rss_mib": max(rss, default=0.0),
        "peak_rss_mib_each": rss,
    }
    if monitor is not None:
        seen = monitor.count()
        row.update(monitor_sent_per_task=round(seen.sent / n, 1), monitor_incl_lua_per_task=round(seen.total / n, 1))
    return row


def _wait_reports(receiver: Any, n: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while len(receiver.reports) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _check(by_task: dict[str, list[Any]], task_ids: list[str]) -> dict[str, Any]:
    """Every task exactly one verified ``done`` callback, and no callback for anything else."""
    counts = [len(by_task.get(task_id, [])) for task_id in task_ids]
    unexpected = sorted(set(by_task) - set(task_ids))
    done = sum(1 for task_id in task_ids for r in by_task.get(task_id, []) if r.verified and r.body["status"] == "done")
    ok = all(c == 1 for c in counts) and not unexpected and done == len(task_ids)
    return {
        "ok": ok,
        "callbacks": sum(counts),
        "tasks_without_callback": counts.count(0),
        "tasks_with_repeats": sum(c > 1 for c in counts),
        "unexpected_callbacks": len(unexpected),
        "done": done,
    }


def _detection(emulator: Any, reports: list[Any], n: int) -> dict[str, Any]:
    """How each system polled the same vendor: status queries per task (the emulator's count), and the seconds
    from a vendor job's end to its task's callback (p50, p95): fewer queries can mean later ones."""
    queries = sum(1 for _, path, _ in emulator.requests if path == STATUS_PATH)
    to_wall = time.time() - emulator.config.clock()  # the emulator's timeline is on its own (monotonic) clock
    ends = {task.task_id: task.ends_at + to_wall for task in emulator.tasks}
    waits = sorted(r.at - ends[r.body["vendorTaskId"]] for r in reports if r.body.get("vendorTaskId") in ends)
    found: dict[str, Any] = {"status_queries_per_task": round(queries / n, 2)}
    if waits:
        found["done_to_report_p50_s"] = round(waits[len(waits) // 2], 2)
        found["done_to_report_p95_s"] = round(waits[min(len(waits) - 1, int(len(waits) * 0.95))], 2)
    return found


# -- summarising -------------------------------------------------------------------------------------------


def _metrics(scenarios: list[Scenario]) -> dict[str, tuple[str, str | None]]:
    """metric name -> (row field, the scenario it is read from; None: any run that has the field)."""
    metrics: dict[str, tuple[str, str | None]] = {}
    for s in scenarios:
        if s.timed:
            metrics[f"tasks_per_s {s.name}"] = ("tasks_per_s", s.name)
            metrics[f"cpu_ms_per_task {s.name}"] = ("cpu_ms_per_task", s.name)
            metrics[f"commands_per_task {s.name}"] = ("commands_per_task", s.name)
            metrics[f"status_queries_per_task {s.name}"] = ("status_queries_per_task", s.name)
            metrics[f"done_to_report_p50_s {s.name}"] = ("done_to_report_p50_s", s.name)
    metrics["monitor_sent_per_task"] = ("monitor_sent_per_task", None)
    metrics["monitor_incl_lua_per_task"] = ("monitor_incl_lua_per_task", None)
    metrics["idle_commands_per_s"] = ("idle_commands_per_s", None)
    metrics["idle_sent_per_s"] = ("idle_sent_per_s", None)
    metrics["peak_rss_mib"] = ("peak_rss_mib", None)
    return metrics


def summarise(rows: list[dict[str, Any]], scenarios: list[Scenario], systems: list[str]) -> dict[str, Any]:
    """Medians of the sound runs per system and metric, and the ratios scf-relay / each peer."""
    medians: dict[str, dict[str, float]] = {}
    for name in systems:
        good = [r for r in rows if r["system"] == name and r["ok"]]
        medians[name] = {}
        for metric, (field, scenario) in _metrics(scenarios).items():
            values = [r[field] for r in good if field in r and (scenario is None or r["scenario"] == scenario)]
            if values:
                medians[name][metric] = round(statistics.median(values), 2)
    ratios: dict[str, dict[str, float]] = {}
    for peer in systems:
        if peer == BASELINE or BASELINE not in medians:
            continue
        ratios[f"{BASELINE}/{peer}"] = {
            metric: round(value / medians[peer][metric], 2)
            for metric, value in medians[BASELINE].items()
            if medians[peer].get(metric)
        }
    return {"medians": medians, "ratios": ratios}


def table(summary: dict[str, Any], systems: list[str]) -> str:
    medians = summary["medians"]
    metrics = sorted({m for values in medians.values() for m in values})
    ratio_names = list(summary["ratios"])
    header = f"{'metric':<34}" + "".join(f"{s:>12}" for s in systems) + "".join(f"{r:>22}" for r in ratio_names)
    lines = [header]
    for metric in metrics:
        cells = "".join(f"{medians[s].get(metric, '-'):>12}" for s in systems)
        ratio_cells = "".join(f"{summary['ratios'][r].get(metric, '-'):>22}" for r in ratio_names)
        lines.append(f"{metric:<34}{cells}{ratio_cells}")
    return "\n".join(lines)


def machine(redis_version: str, redis_where: str) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("dramatiq", "celery", "kombu", "redis", "httpx"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_version": redis_version,
        "redis": redis_where,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "packages": versions,
    }


@contextmanager
def redis_for(url: str | None) -> Iterator[tuple[str, str]]:
    """``(url, description)``: the given server, or a private ``redis-server`` for the run's duration."""
    if url:
        yield url, f"{url} (shared: command counts include other clients of the server)"
        return
    with PrivateRedis() as server:
        yield server.url, "private redis-server on loopback, started by the benchmark"


def scenarios_for(args: argparse.Namespace) -> list[Scenario]:
    if args.smoke:  # MONITOR rides along the one small run (slower, but smoke numbers are not recorded ones)
        return [Scenario("n5", 5, JOB_S, idle_s=2.0, monitor=True)]
    sizes = [int(n) for n in args.tasks.split(",")]
    scenarios = [Scenario(f"n{n}", n, JOB_S, idle_s=args.idle_s if i == 0 else 0.0) for i, n in enumerate(sizes)]
    scenarios.append(Scenario("instant", max(sizes), 0.0))
    if args.monitor_tasks:
        monitor_pass = Scenario(f"monitor_n{args.monitor_tasks}", args.monitor_tasks, JOB_S, monitor=True, timed=False)
        scenarios.append(monitor_pass)
    return scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="200,1000", help="task counts of the timed runs (default 200,1000)")
    parser.add_argument("--runs", type=int, default=3, help="rotated rounds (default 3)")
    parser.add_argument("--idle-s", type=float, default=30.0, help="idle window (default 30 s)")
    parser.add_argument("--monitor-tasks", type=int, default=50, help="tasks of the MONITOR pass (0: none)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: all three)")
    parser.add_argument("--redis", default=None, help="redis://host:port/db to use instead of a private server")
    parser.add_argument("--smoke", action="store_true", help="5 tasks, 1 run, 2 s idle; skips missing peers")
    args = parser.parse_args(argv)
    runs = 1 if args.smoke else args.runs

    systems, skipped = [], {}
    for name in args.systems.split(","):
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})")
        missing = missing_dependencies(name)
        if missing:
            skipped[name] = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
        else:
            systems.append(name)
    if skipped and not args.smoke:
        parser.error(f"missing peers: {skipped}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")

    scenarios = scenarios_for(args)
    rows: list[dict[str, Any]] = []
    with redis_for(args.redis) as (url, where), tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        import redis

        version = server_version(redis.Redis.from_url(url))
        for round_no in range(runs):
            for scenario in scenarios:
                if scenario.monitor and round_no > 0 and not args.smoke:
                    continue  # one MONITOR pass is enough: it counts, it does not time
                for name in systems:
                    row = run_once(SYSTEMS[name], scenario, url, Path(tmp) / name)
                    row["round"] = round_no
                    rows.append(row)
                    flag = "ok" if row["ok"] else "FAILED"
                    print(
                        f"round {round_no} {scenario.name:<12} {name:<10} {flag:<6} {row['tasks_per_s']:>7} tasks/s "
                        f"{row['cpu_ms_per_task']:>6} CPU ms/task {row['commands_per_task']:>6} cmds/task",
                        flush=True,
                    )
    summary = summarise(rows, scenarios, systems)
    failed = [f"{r['system']} {r['scenario']} round {r['round']}" for r in rows if not r["ok"]]
    report = {
        "benchmark": "peers",
        "command": "python -m bench.peers " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(version, where),
        "setup": {
            "processes": 2,
            "threads": 4,
            "job_s": JOB_S,
            "pipeline": "model_pose12",
            "rounds": runs,
            "scenarios": [s.__dict__ for s in scenarios],
        },
        "skipped": skipped,
        "failed": failed,
        **summary,
        "runs": rows,
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(summary, systems))
    _chart(report)
    if failed:
        print(f"failed runs (a task without exactly one callback, or unfinished): {failed}", file=sys.stderr)
    return 1 if failed else 0


def _chart(report: dict[str, Any]) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')")
        return
    from bench.charts import draw_peers

    draw_peers(report, CHART_PATH)
    print(f"chart: {CHART_PATH}")
