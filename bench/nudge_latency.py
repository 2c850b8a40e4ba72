"""Nudge-to-first-step latency, and what an idle consumer run costs, against the local CMQ server.

    python -m bench.nudge_latency [--trials 10] [--lag-s 1.5] [--wait-s 3] [--idle-receives 2]

The local CMQ server holds every sent message back for ``--lag-s`` seconds (its ``pull_lag_s``: the delivery
delay Tencent documents with few messages in a queue). Each trial enqueues one message and starts a consumer run
at once, as the producer shim's nudge does; the latency is from the enqueue to the consumer's first received
message. (The message is not a job, so its one step dead-letters it and leaves no successor behind to blur the
next trial.) Two drains are compared: the old one (0 s wait, idle at the first empty
receive) and the long-polling one (``--wait-s``, idle after ``--idle-receives`` empty receives). A run that
finds nothing leaves the message to the next timer tick (10 s later on the deployed timer). Then one run on an
empty queue per drain: its wall time is what each idle timer tick bills. Results go to
``bench/results/nudge_latency.json``; the run fails when the long-polling drain misses a message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR

SECRET_ID, SECRET_KEY, TOKEN = "AKIDbenchnudge", "bench-nudge-key", "bench-nudge-token"
TIMER_PERIOD_S = 10
TICKS_PER_DAY = 86_400 // TIMER_PERIOD_S


def run_mode(home: Path, cmq: Any, trials: int, wait_s: float, idle_receives: int) -> dict:
    from consumer.drain import Budget, Hooks, drain
    from scf_relay.demo.stack import LocalStack

    env = {
        "RELAY_QUEUE": f"cmq://relay_jobs?region=gz&dlq=relay_dead&endpoint={cmq.endpoint}",
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
        "RELAY_RECEIVE_WAIT_S": str(wait_s),
        "RELAY_IDLE_RECEIVES": str(idle_receives),
    }
    latencies: list[float] = []
    missed = 0
    with LocalStack(home, env=env) as stack:
        for i in range(trials):
            first: list[float] = []
            stack.svc.queue.send(f"bench nudge {i}")
            enqueued = time.monotonic()
            hooks = Hooks(on_receive=lambda _r, seen=first: seen.append(time.monotonic()))
            drain(stack.svc, Budget(30.0), max_messages=1, hooks=hooks)
            if first:
                latencies.append((first[0] - enqueued) * 1000)
            else:
                missed += 1
                time.sleep(cmq.broker.pull_lag_s)  # the next timer tick would find it: clear it for the next trial
                drain(stack.svc, Budget(30.0), max_messages=1)
        started = time.monotonic()
        idle = drain(stack.svc, Budget(30.0))
        idle_s = time.monotonic() - started
    return {
        "receive_wait_s": wait_s,
        "idle_receives": idle_receives,
        "found_by_the_nudged_run": trials - missed,
        "missed_until_next_timer_tick": missed,
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
        "idle_run_s": round(idle_s, 2),
        "idle_run_stopped_by": idle.stopped_by,
        "idle_billed_s_per_day_at_10s_timer": round(idle_s * TICKS_PER_DAY),
    }


def run(trials: int, lag_s: float, wait_s: float, idle_receives: int) -> dict:
    from tests.servers.cmq_server import LocalCmqServer

    modes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, wait, idle in (("old_zero_wait", 0.0, 1), ("long_poll", wait_s, idle_receives)):
            with LocalCmqServer(SECRET_ID, SECRET_KEY, TOKEN, max_real_wait_s=30.0) as cmq:
                cmq.create_queue("relay_dead", visibility_timeout_s=1)
                cmq.create_queue("relay_jobs", visibility_timeout_s=30, dlq="relay_dead", max_receive_count=5)
                cmq.broker.pull_lag_s = lag_s
                modes[name] = run_mode(Path(tmp) / name, cmq, trials, wait, idle)
    return {
        "command": f"python -m bench.nudge_latency --trials {trials} --lag-s {lag_s} --wait-s {wait_s} "
        f"--idle-receives {idle_receives}",
        "trials": trials,
        "pull_lag_s": lag_s,
        "timer_period_s": TIMER_PERIOD_S,
        "modes": modes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--lag-s", type=float, default=1.5, help="the local CMQ server's delivery delay")
    parser.add_argument("--wait-s", type=float, default=3.0, help="RELAY_RECEIVE_WAIT_S of the long-polling drain")
    parser.add_argument("--idle-receives", type=int, default=2)
    args = parser.parse_args(argv)
    result = run(args.trials, args.lag_s, args.wait_s, args.idle_receives)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "nudge_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sound = result["modes"]["long_poll"]["missed_until_next_timer_tick"] == 0 or args.lag_s >= args.wait_s
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
