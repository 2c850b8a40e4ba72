"""Detection latency (vendor done → report) and status queries per task: polling, smarter polling, webhook.

    python -m bench.webhook_latency [--tasks 40] [--job-s 4] [--real-time]

Each mode runs the same uploads through the embedded stack in virtual time (LocalStack with a VirtualClock: the
consumer, queue, emulator, webhook route and receiver share one clock, which moves in 0.5 s steps when nothing is
ready, so latencies are exact to that step and the run takes seconds). ``--real-time`` runs the same on the wall
clock instead (the emulator's webhook thread calling the route over loopback HTTP, the consumer draining every
0.1 s when idle): slower, and it includes every real delay; results go to ``webhook_latency_real.json``.
Uploads arrive one every ``--gap-s``
(virtual) seconds; the vendor emulator runs each job ``--job-s`` after ``0.5`` s queued.

Modes: ``polling`` (the pipeline's policy from ``first_s``; ``RELAY_POLL_FROM_ESTIMATE=0``), ``estimate`` (first
poll at the pipeline's learned runtime), ``webhook`` (the emulator calls the webhook route when a job ends;
polling from the estimate stays as the fallback). Target (issue 11): webhook p95 ≤ 2 s, ≤ 1.2 queries per task.
Queries per task count every status query the vendor got: the POLL steps' (the COLLECT after a poll that saw
the job succeed reuses that poll's answer, ``consumer/seen_finished.py``; one that asked again would count too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench import RESULTS_DIR

RESULTS_PATH = RESULTS_DIR / "webhook_latency.json"
REAL_TIME_PATH = RESULTS_DIR / "webhook_latency_real.json"
MODES = ("polling", "estimate", "webhook")
OUTPUTS = "/task/openapi/outputs"


def run_mode(mode: str, tasks: int, job_s: float, gap_s: float, home: Path, *, real_time: bool = False) -> dict:
    import time

    from scf_relay.demo.clock import VirtualClock
    from scf_relay.demo.stack import LocalStack
    from vendors.emulator.media import make_jpeg

    env = {"RELAY_POLL_FROM_ESTIMATE": "0" if mode == "polling" else "1", "RELAY_LOG_LEVEL": "WARNING"}
    clock = None if real_time else VirtualClock()
    knobs = {"job_s": job_s, "queue_s": 0.5, "concurrency": tasks + 1, "seed": 7}
    if real_time:
        knobs["clock"] = time.time  # the receiver's clock too: report time - job end is a latency
    with LocalStack(home / mode, clock=clock, emulator=knobs, env=env, webhooks=mode == "webhook") as stack:
        stack.svc.rng.seed(7)
        for n in range(tasks):
            stack.deliver(stack.upload(f"t{n:03}", "u1", "promo_poster", make_jpeg(n)))
            stack.tick()
            if clock is not None:
                clock.advance(gap_s)
            else:
                time.sleep(gap_s)
        if not stack.run_until_terminal(timeout_s=600):
            raise SystemExit(f"{mode}: tasks left unfinished")
        reports = stack.receiver.by_task() if stack.receiver else {}
        lags = []
        for task_id in stack.views:
            [report] = reports[task_id]  # exactly one report per task, or the run is unsound
            vendor = stack.emulator.task(report.body["vendorTaskId"])
            lags.append(report.at - vendor.ends_at)
        queries = sum(1 for _, path, _ in stack.emulator.requests if path == OUTPUTS)
        webhooks = len(stack.emulator.webhook_calls)
    lags.sort()
    return {
        "mode": mode,
        "tasks": tasks,
        "latency_p50_s": round(statistics.median(lags), 2),
        "latency_p95_s": round(lags[max(0, round(0.95 * len(lags)) - 1)], 2),
        "latency_max_s": round(lags[-1], 2),
        "queries_per_task": round(queries / tasks, 2),
        "webhook_calls": webhooks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--job-s", type=float, default=4.0)
    parser.add_argument("--gap-s", type=float, default=1.0, help="seconds (virtual unless --real-time) between uploads")
    parser.add_argument("--real-time", action="store_true", help="on the wall clock, over real loopback HTTP")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        rows = [
            run_mode(mode, args.tasks, args.job_s, args.gap_s, Path(tmp), real_time=args.real_time) for mode in MODES
        ]
    for row in rows:
        print(json.dumps(row))
    result = {"job_s": args.job_s, "gap_s": args.gap_s, "clock": "wall" if args.real_time else "virtual", "modes": rows}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (REAL_TIME_PATH if args.real_time else RESULTS_PATH).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
