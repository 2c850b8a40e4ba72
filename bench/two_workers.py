"""Worker processes end to end: N demo tasks through two ``scf-relay worker`` processes on one Redis, and one
worker on SQLite as the baseline.

    python -m bench.two_workers [--tasks 200] [--concurrency 4] [--json] [--redis URL]

Each scenario starts a :class:`~scf_relay.demo.stack.LocalStack` (RunningHub emulator + report receiver on
loopback), starts the worker processes, then uploads the tasks (the three packaged pipelines in turn, each COS
event delivered twice, as COS may) and times until every task has its report. The workers are then stopped
with SIGTERM and their ``--json`` summaries collected. The check that matters: every task got exactly one
report, and the vendor saw exactly one submission per task. Poll delays are shortened (a copy of the packaged
pipelines with ``first_s = 0.2``) so the numbers measure the workers, not the polling policy.

Results go to ``bench/results/two_workers.json``; ``--json`` prints that JSON instead of the table. The Redis
run uses a fresh key prefix on DB 15 (``RELAY_BENCH_REDIS`` or ``--redis``) and removes its keys afterwards.
The process helpers here (:class:`WorkerProcess`, :func:`fast_pipelines`) are shared with the tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from scf_relay.chaos.run import drop_redis_keys
from scf_relay.demo.runner import PIPELINE_CYCLE
from scf_relay.demo.stack import LocalStack

RESULTS_PATH = RESULTS_DIR / "two_workers.json"
DEFAULT_REDIS = os.environ.get("RELAY_BENCH_REDIS", "redis://127.0.0.1:6379/15")
FAST_POLL = "poll = { first_s = 0.2, base_s = 0.2, factor = 1.0, max_s = 0.5, queued_factor = 1.0 }"
#: the emulator as a fast vendor with room for every task at once
EMULATOR_KNOBS = {"job_s": 0.2, "queue_s": 0.05, "concurrency": 100_000, "seed": 7}


def fast_pipelines(folder: Path, poll: str = FAST_POLL) -> Path:
    """A copy of the packaged ``pipelines.toml`` whose polls follow ``poll`` (default: start after 0.2 s), for
    ``RELAY_PIPELINES``."""
    from relay_core.pipelines import PACKAGED

    text = re.sub(r"^poll = \{[^}]*\}$", poll, PACKAGED.read_text(encoding="utf-8"), flags=re.MULTILINE)
    path = Path(folder) / "pipelines-fast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def worker_command(*args: str) -> list[str]:
    """``scf-relay worker ...`` through the console script beside this interpreter (or its module)."""
    script = Path(sys.executable).with_name("scf-relay")
    base = [str(script)] if script.exists() else [sys.executable, "-c", "from scf_relay.cli.app import main; main()"]
    return [*base, "worker", "--json", *args]


class WorkerProcess:
    """One ``scf-relay worker --json`` subprocess; its JSON log lines go to ``log_path``."""

    def __init__(
        self, log_path: Path, *args: str, env: dict[str, str] | None = None, command: list[str] | None = None
    ) -> None:
        """``command`` replaces ``scf-relay worker --json <args>`` as the whole command line."""
        self.log_path = Path(log_path)
        self._log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command if command is not None else worker_command(*args),
            env=env if env is not None else os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=self._log_file,
        )
        self._stdout = b""

    def logs(self) -> list[dict]:
        """The JSON log lines written so far (anything else on stderr is skipped)."""
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def wait_for_log(self, msg: str, timeout_s: float = 15.0, **fields: Any) -> dict:
        """The first log line with ``msg`` and ``fields``; raises ``TimeoutError`` (or if the process ends)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.logs():
                if line.get("msg") == msg and all(line.get(k) == v for k, v in fields.items()):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise TimeoutError(f"no log line {msg!r} {fields} in {self.log_path} (exit code {self.proc.poll()})")

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        """Wait for the exit (reading stdout); returns the exit code (negative: killed by that signal)."""
        out, _ = self.proc.communicate(timeout=timeout_s)
        self._stdout += out or b""
        self._log_file.close()
        return self.proc.returncode

    def summary(self) -> dict:
        """The worker's ``--json`` summary printed at a graceful exit."""
        return json.loads(self._stdout)

    def kill(self) -> None:
        """SIGKILL if still running (cleanup), and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log_file.close()


def run_scenario(
    home: Path,
    *,
    n_tasks: int,
    workers: int,
    concurrency: int,
    env: dict[str, str] | None = None,
    deliveries: int = 2,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """``workers`` worker processes finish ``n_tasks`` demo tasks; returns timings and the report checks."""
    from vendors.emulator.media import make_jpeg

    home = Path(home)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    # this process (shim, emulator) logs warnings only; the workers log every step to their files
    extra_env = {"RELAY_LOG_LEVEL": "WARNING", **(env or {}), "RELAY_PIPELINES": str(fast_pipelines(home))}
    with LocalStack(home / "stack", emulator=dict(EMULATOR_KNOBS), env=extra_env) as stack:
        worker_env = {**os.environ, "RELAY_LOG_LEVEL": "INFO"}
        args = ("--concurrency", str(concurrency), "--idle-sleep-s", "0.05")
        procs = [WorkerProcess(home / f"worker-{i}.log", *args, env=worker_env) for i in range(workers)]
        try:
            for proc in procs:
                proc.wait_for_log("worker started")
            started = time.monotonic()
            shim = _enqueue(stack, n_tasks, deliveries, make_jpeg)
            enqueue_s = time.monotonic() - started
            finished = _wait_reported(stack, n_tasks, timeout_s)
            elapsed_s = time.monotonic() - started
            for proc in procs:
                proc.send(signal.SIGTERM)
            exit_codes = [proc.wait(timeout_s=30) for proc in procs]
        finally:
            for proc in procs:
                proc.kill()
        summaries = [proc.summary() for proc in procs]
        stack.refresh()
        views = list(stack.views.values())
        return {
            "tasks": n_tasks,
            "workers": workers,
            "concurrency": concurrency,
            "finished": finished,
            "wall_s": round(elapsed_s, 2),
            "enqueue_s": round(enqueue_s, 2),
            "tasks_per_s": round(n_tasks / elapsed_s, 2),
            "done": sum(v.status == "done" for v in views),
            "dead_lettered": sum(v.dead_letter is not None for v in views),
            "reports": sum(v.reports for v in views),
            "exactly_one_report": all(v.reports == 1 for v in views),
            "vendor_submissions": len(stack.emulator.tasks),
            "messages_enqueued_by_shim": shim["enqueued"],
            "duplicates_dropped": sum(s["dropped"] for s in summaries),
            "steps": sum(s["received"] for s in summaries),
            "steps_per_worker": [s["received"] for s in summaries],
            "step_errors": sum(s["errors"] for s in summaries),
            "exit_codes": exit_codes,
        }


def _enqueue(stack: LocalStack, n_tasks: int, deliveries: int, make_jpeg) -> dict[str, int]:
    run = uuid.uuid4().hex[:6]
    enqueued = 0
    for i, pipeline in zip(range(n_tasks), itertools.cycle(PIPELINE_CYCLE)):
        event = stack.upload(f"bench-{run}-{i:04d}", f"seller-{i % 4 + 1}", pipeline, make_jpeg(seed=i))
        enqueued += sum(len(s["enqueued"]) for s in stack.deliver(event, times=deliveries))
    return {"enqueued": enqueued}


def _wait_reported(stack: LocalStack, n_tasks: int, timeout_s: float) -> bool:
    """Until every task has a report or a dead letter (cheap checks: the receiver and the queue's counts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(stack.receiver.by_task()) + stack.svc.queue.stats().dead >= n_tasks:
            return True
        time.sleep(0.1)
    return False


def run_redis(n_tasks: int, concurrency: int, base_url: str, folder: Path) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    url = f"{base_url}?prefix={prefix}"
    try:
        return run_scenario(
            folder / "redis",
            n_tasks=n_tasks,
            workers=2,
            concurrency=concurrency,
            env={"RELAY_QUEUE": url, "RELAY_LEDGER": url},
        )
    finally:
        drop_redis_keys(base_url, prefix)


def run_sqlite(n_tasks: int, concurrency: int, folder: Path) -> dict[str, Any]:
    return run_scenario(folder / "sqlite", n_tasks=n_tasks, workers=1, concurrency=concurrency)


def table(report: dict[str, Any]) -> str:
    lines = [
        f"worker processes, {report['tasks']} demo tasks, {report['concurrency']} threads per worker",
        f"{'scenario':<16} {'tasks/s':>8} {'wall s':>7} {'one report each':>16} {'dup dropped':>12} {'steps':>6}",
    ]
    for name, row in report["scenarios"].items():
        lines.append(
            f"{name:<16} {row['tasks_per_s']:>8} {row['wall_s']:>7} {str(row['exactly_one_report']):>16} "
            f"{row['duplicates_dropped']:>12} {row['steps']:>6}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.two_workers", description="worker processes end to end")
    parser.add_argument("--tasks", type=int, default=200, help="demo tasks per scenario (default 200)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker process (default 4)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="redis URL without query (default: DB 15)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        scenarios = {
            "redis_2_workers": run_redis(args.tasks, args.concurrency, args.redis, Path(tmp)),
            "sqlite_1_worker": run_sqlite(args.tasks, args.concurrency, Path(tmp)),
        }
    report = {
        "benchmark": "two_workers",
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "emulator": EMULATOR_KNOBS,
        "poll": FAST_POLL,
        "scenarios": scenarios,
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2) if args.json else table(report))
    return report


if __name__ == "__main__":
    main()
