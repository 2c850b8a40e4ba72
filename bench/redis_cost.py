"""What the self-hosted Redis worker costs Redis and the CPU: commands and round trips per task, idle rate.

    python -m bench.redis_cost [--tasks N] [--concurrency 4] [--idle-s 5] [--json]

One ``scf-relay worker`` process (``--concurrency`` threads, production defaults otherwise: a 3 s receive wait,
0.5 s idle sleep) runs N ``model_pose12`` tasks — submit → ~3 polls → collect (12 downloads) → audit → report —
against the RunningHub emulator (2.5 s jobs, a poll every second on the policy's fixed curve), a local store and
a redis-server of this script's own (:mod:`bench.private_redis`), so the server's ``INFO commandstats`` counts
nothing but this run.

Measured, from the first upload until every task's report arrived and the worker's log went quiet:

* Redis commands per task executed by the server, commands inside Lua scripts included (commandstats deltas);
* commands and round trips per task sent by the clients (the worker and the producer shim in this process),
  counted in redis-py (:mod:`bench.redis_counting`);
* worker CPU ms per task (``/proc/<pid>/stat``, every thread of the worker process);

then, with nothing left to do, over ``--idle-s`` seconds: Redis commands per second (incl. Lua), commands the
worker sent per second, and idle worker CPU. Every task must end ``done`` with exactly one report and one vendor
submission, else the run exits 1. Results go to ``bench/results/redis_cost.json``; ``--json`` prints that JSON.

The "before" numbers in ``bench/README.md`` are this script run on the code before the worker was changed
(recorded then, since the old code path cannot run beside the new one in one process).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from bench.private_redis import command_calls, delta, private_redis
from bench.redis_counting import counted_cli_command, read_counts
from bench.two_workers import WorkerProcess, fast_pipelines

RESULTS_PATH = RESULTS_DIR / "redis_cost.json"
PIPELINE = "model_pose12"
#: vendor jobs of 2.5 s against a poll every second (the policy's curve, not the learned estimate): three polls
#: per task when the worker picks each poll up on time
POLL = "poll = { first_s = 1.0, base_s = 1.0, factor = 1.0, max_s = 1.0, queued_factor = 1.0 }"
EMULATOR_KNOBS = {"job_s": 2.5, "queue_s": 0.05, "concurrency": 100_000, "seed": 7}
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


class Sampler:
    """Snapshots of every counter at once: server commandstats, both processes' client counts, worker CPU."""

    def __init__(self, server: Any, worker: WorkerProcess, dump_path: Path) -> None:
        self.server, self.worker, self.dump_path = server, worker, dump_path

    def sample(self) -> dict[str, Any]:
        from bench import redis_counting

        return {
            "at": time.monotonic(),
            "server": command_calls(self.server),
            "worker": read_counts(self.worker.proc.pid, self.dump_path),
            "bench": redis_counting.counts(),
            "cpu_s": cpu_s(self.worker.proc.pid),
        }


def _between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    by_command = delta(after["server"], before["server"])
    return {
        "seconds": after["at"] - before["at"],
        "server_commands": sum(by_command.values()),
        "by_command": dict(sorted(by_command.items(), key=lambda kv: -kv[1])),
        "worker_sent": after["worker"]["commands"] - before["worker"]["commands"],
        "worker_round_trips": after["worker"]["round_trips"] - before["worker"]["round_trips"],
        "bench_sent": after["bench"]["commands"] - before["bench"]["commands"],
        "bench_round_trips": after["bench"]["round_trips"] - before["bench"]["round_trips"],
        "cpu_s": after["cpu_s"] - before["cpu_s"],
    }


def _steps(worker: WorkerProcess) -> collections.Counter[str]:
    return collections.Counter(line.get("stage", "?") for line in worker.logs() if line.get("msg") == "step")


def _wait_quiet(worker: WorkerProcess, quiet_s: float = 0.5, timeout_s: float = 30.0) -> None:
    """Until the worker has logged no step for ``quiet_s`` (the last deletes after the last report are done)."""
    deadline = time.monotonic() + timeout_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_seen = sum(_steps(worker).values())
        if now_seen != seen:
            seen, since = now_seen, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)


def run(n_tasks: int, concurrency: int, idle_s: float, folder: Path) -> dict[str, Any]:
    """One measured run (see the module docstring); returns the JSON-ready result."""
    import redis

    from bench import redis_counting
    from scf_relay.demo.stack import LocalStack
    from vendors.emulator.media import make_jpeg

    redis_counting.install()
    with private_redis() as base_url:
        url = f"{base_url}?prefix=cost"
        server = redis.Redis.from_url(base_url, decode_responses=True)
        env = {
            "RELAY_LOG_LEVEL": "WARNING",
            "RELAY_QUEUE": url,
            "RELAY_LEDGER": url,
            "RELAY_PIPELINES": str(fast_pipelines(folder, POLL)),
            "RELAY_POLL_FROM_ESTIMATE": "0",  # the same chain every task: polls on the policy's curve
        }
        with LocalStack(folder / "stack", emulator=dict(EMULATOR_KNOBS), env=env) as stack:
            worker_env = {**os.environ, "RELAY_LOG_LEVEL": "INFO"}
            worker_env.pop("RELAY_RECEIVE_WAIT_S", None)  # the stack's tick setting; the worker keeps its default
            dump_path = folder / "worker-counts.json"
            command = counted_cli_command(dump_path, "worker", "--json", "--concurrency", str(concurrency))
            worker = WorkerProcess(folder / "worker.log", env=worker_env, command=command)
            try:
                worker.wait_for_log("worker started")
                time.sleep(0.5)  # past the first housekeeping run
                sampler = Sampler(server, worker, dump_path)
                start = sampler.sample()
                run_id = uuid.uuid4().hex[:6]
                for i in range(n_tasks):
                    event = stack.upload(f"cost-{run_id}-{i:04d}", f"seller-{i % 4 + 1}", PIPELINE, make_jpeg(seed=i))
                    stack.deliver(event)
                deadline = time.monotonic() + 60 + n_tasks
                while len(stack.receiver.by_task()) < n_tasks and time.monotonic() < deadline:
                    time.sleep(0.05)
                _wait_quiet(worker)
                busy_end = sampler.sample()
                time.sleep(idle_s)
                idle_end = sampler.sample()
                worker.send(signal.SIGTERM)
                exit_code = worker.wait(timeout_s=30)
            finally:
                worker.kill()
            stack.refresh()
            views = list(stack.views.values())
            steps = _steps(worker)
            submissions = len(stack.emulator.tasks) if stack.emulator else 0
        server.close()
    busy, idle = _between(start, busy_end), _between(busy_end, idle_end)
    per_task = n_tasks or 1
    sound = (
        exit_code == 0
        and all(v.status == "done" and v.reports == 1 for v in views)
        and submissions == n_tasks
        and len(views) == n_tasks
    )
    return {
        "tasks": n_tasks,
        "sound": sound,
        "done": sum(v.status == "done" for v in views),
        "exactly_one_report": all(v.reports == 1 for v in views),
        "vendor_submissions": submissions,
        "steps_per_task": {stage: round(n / per_task, 2) for stage, n in sorted(steps.items())},
        "per_task": {
            "redis_commands_incl_lua": round(busy["server_commands"] / per_task, 1),
            "sent_commands": round((busy["worker_sent"] + busy["bench_sent"]) / per_task, 1),
            "round_trips": round((busy["worker_round_trips"] + busy["bench_round_trips"]) / per_task, 1),
            "worker_sent_commands": round(busy["worker_sent"] / per_task, 1),
            "worker_round_trips": round(busy["worker_round_trips"] / per_task, 1),
            "worker_cpu_ms": round(busy["cpu_s"] * 1000 / per_task, 1),
        },
        "per_step": {
            "redis_commands_incl_lua": round(busy["server_commands"] / max(1, sum(steps.values())), 1),
            "round_trips": round(
                (busy["worker_round_trips"] + busy["bench_round_trips"]) / max(1, sum(steps.values())), 1
            ),
        },
        "busy_s": round(busy["seconds"], 2),
        "tasks_per_s": round(n_tasks / busy["seconds"], 2) if busy["seconds"] else None,
        "idle": {
            "window_s": round(idle["seconds"], 2),
            "redis_commands_per_s_incl_lua": round(idle["server_commands"] / idle["seconds"], 2),
            "worker_sent_per_s": round(idle["worker_sent"] / idle["seconds"], 2),
            "worker_round_trips_per_s": round(idle["worker_round_trips"] / idle["seconds"], 2),
            "worker_cpu_ms_per_s": round(idle["cpu_s"] * 1000 / idle["seconds"], 2),
            "by_command": idle["by_command"],
        },
        "busy_by_command_per_task": {k: round(v / per_task, 2) for k, v in busy["by_command"].items()},
    }


def table(report: dict[str, Any]) -> str:
    r = report["result"]
    p, idle = r["per_task"], r["idle"]
    lines = [
        f"redis worker cost: {r['tasks']} {PIPELINE} tasks, 1 worker x {report['concurrency']} threads, "
        f"sound={r['sound']}",
        f"  per task: {p['redis_commands_incl_lua']} redis commands incl. Lua, {p['sent_commands']} sent, "
        f"{p['round_trips']} round trips, worker CPU {p['worker_cpu_ms']} ms",
        f"  idle worker: {idle['redis_commands_per_s_incl_lua']} redis commands/s incl. Lua "
        f"({idle['worker_sent_per_s']} sent/s), CPU {idle['worker_cpu_ms_per_s']} ms/s",
        f"  steps per task: {r['steps_per_task']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="model_pose12 tasks (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle window in seconds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="relay-redis-cost-") as tmp:
        result = run(args.tasks, args.concurrency, args.idle_s, Path(tmp))
    report = {
        "benchmark": "redis_cost",
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "emulator": EMULATOR_KNOBS,
        "result": result,
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2) if args.json else table(report))
    if not result["sound"]:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
