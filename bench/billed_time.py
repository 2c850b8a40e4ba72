"""Billed function time per task: milliseconds per step, against the bare cost of one queue hop.

    python -m bench.billed_time [--tasks N] [--json]

Runs N tasks (cycling the three packaged pipelines) through the embedded stack — real shim, SQLite queue and
ledger, local bucket, RunningHub emulator over loopback HTTP, local auditor, signed reports — and records the
wall time of every consumer step by stage. The baseline, measured in the same process first, is one bare hop:
receive a job message, send its successor, advance the ledger, delete it (what every step pays at least).
Ratios are step time / baseline hop. Stages that join the hop of the message received (poll → collect → audit)
are one step, labelled ``poll→audit``. Waiting time is not billed: it is a delayed message, so the billed time
per task is the sum of its steps. Results go to ``bench/results/billed_time.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench import RESULTS_DIR

RESULTS_PATH = RESULTS_DIR / "billed_time.json"


def baseline_hop_ms(home: Path, hops: int = 300) -> float:
    """Median ms of receive -> send successor -> ledger advance -> delete, on the embedded backends."""
    from jobqueue.ledger.sqlite import SqliteLedger
    from jobqueue.message import InputObject, JobMessage, Stage, parse
    from jobqueue.queue.sqlite import SqliteQueue

    queue, ledger = SqliteQueue(home / "baseline-queue.db"), SqliteLedger(home / "baseline-ledger.db")
    now = time.time()
    msg = JobMessage(
        task_id="b1",
        user_id="u1",
        pipeline="promo_poster",
        stage=Stage.POLL,
        input=InputObject(bucket="relay-1250000000", key="input/u1/b1/x.jpg", size=1),
        created_at=now,
        deadline_at=now + 600,
    )
    queue.send(msg.dumps())
    samples = []
    for _ in range(hops):
        started = time.perf_counter()
        [received] = queue.receive(1, 30)
        current = parse(received.body)
        queue.send(current.next().dumps())
        ledger.advance(current.task_id, current.seq, time.time())
        queue.delete(received.receipt)
        samples.append((time.perf_counter() - started) * 1000)
    queue.close()
    ledger.close()
    return statistics.median(samples)


def run(tasks: int) -> dict:
    from jobqueue.errors import PoisonMessage
    from jobqueue.message import Stage, parse
    from scf_relay.demo.clock import VirtualClock
    from scf_relay.demo.stack import LocalStack
    from vendors.emulator.media import make_jpeg

    pipelines = ("model_pose12", "promo_poster", "video_tryon")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        base = baseline_hop_ms(home)
        by_stage: dict[str, list[float]] = defaultdict(list)
        per_task: dict[str, float] = defaultdict(float)
        # virtual time: the vendor's and the polls' waits take no wall time; each step's billed time is real
        with LocalStack(home / "stack", clock=VirtualClock()) as stack:
            original, receive = stack._on_step, stack.svc.queue.receive
            received: dict[tuple[str, int], Stage] = {}  # (task, seq) -> the stage of the message received

            def receive_noting_stages(*args, **kwargs):
                batch = receive(*args, **kwargs)
                for message in batch:
                    with contextlib.suppress(PoisonMessage):  # a poison body has no stage
                        parsed = parse(message.body)
                        received[(parsed.task_id, parsed.seq)] = parsed.stage
                return batch

            def on_step(msg, move, elapsed_ms):
                original(msg, move, elapsed_ms)
                if msg is not None:
                    first = received.get((msg.task_id, msg.seq), msg.stage)
                    # stages that joined the hop of the received one (poll → collect → audit) are one step; a
                    # REPORT run in that hop after the outcome's write is a step of its own
                    joined = first is not msg.stage and msg.stage is not Stage.REPORT
                    label = f"{first.value}→{msg.stage.value}" if joined else msg.stage.value
                    by_stage[label].append(elapsed_ms)
                    per_task[msg.task_id] += elapsed_ms

            stack._on_step = on_step
            stack.svc.queue.receive = receive_noting_stages
            for i in range(tasks):
                stack.deliver(stack.upload(f"bench-{i:04d}", "u1", pipelines[i % 3], make_jpeg(i)))
            started = time.monotonic()
            ok = stack.run_until_terminal(timeout_s=60 + tasks * 2)
            wall_s = time.monotonic() - started
            done = sum(v.status == "done" for v in stack.views.values())
            billed = sorted(per_task.values())
    order = list(Stage)
    stages = {
        stage: {
            "steps": len(samples),
            "p50_ms": round(statistics.median(samples), 2),
            "max_ms": round(max(samples), 2),
            "p50_over_baseline": round(statistics.median(samples) / base, 1),
        }
        for stage, samples in sorted(by_stage.items(), key=lambda kv: [order.index(Stage(s)) for s in kv[0].split("→")])
    }
    return {
        "command": f"python -m bench.billed_time --tasks {tasks}",
        "tasks": tasks,
        "all_terminal": ok,
        "done": done,
        "wall_s": round(wall_s, 2),
        "baseline_hop_ms": round(base, 3),
        "stages": stages,
        "billed_ms_per_task_p50": round(statistics.median(billed), 1),
        "billed_ms_per_task_max": round(billed[-1], 1),
        "billed_per_task_over_baseline_p50": round(statistics.median(billed) / base, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.tasks)
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"baseline hop: {result['baseline_hop_ms']} ms")
        for stage, row in result["stages"].items():
            print(
                f"{stage:12} steps={row['steps']:4} p50={row['p50_ms']:8} ms  max={row['max_ms']:8} ms  "
                f"x{row['p50_over_baseline']} baseline"
            )
        print(
            f"billed per task: p50 {result['billed_ms_per_task_p50']} ms, max {result['billed_ms_per_task_max']} ms "
            f"(x{result['billed_per_task_over_baseline_p50']} baseline); {result['done']}/{result['tasks']} done"
        )
    return 0 if result["all_terminal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
