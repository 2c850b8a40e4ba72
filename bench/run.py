"""Run every benchmark; ``--smoke`` runs each one small (CI does, to keep the scripts working).

    python -m bench.run [--smoke]

Each benchmark writes its own JSON to ``bench/results/`` and exits non-zero when its run was not sound
(tasks left unfinished, reports duplicated). Numbers from full runs are recorded in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

FULL = [
    ["bench.queue_throughput"],
    ["bench.billed_time", "--tasks", "30"],
    ["bench.memory"],
    ["bench.relay_speed", "--mb", "1024", "--runs", "5"],
    ["bench.store_ops"],
    ["bench.cold_start"],
    ["bench.two_workers"],
    ["bench.nudge_latency"],
    ["bench.webhook_latency", "--tasks", "60", "--job-s", "4"],
    ["bench.webhook_latency", "--tasks", "20", "--job-s", "20", "--real-time"],
    ["bench.redis_cost"],
    ["bench.peers"],
    ["bench.charts"],
    ["bench.targets"],
]
SMOKE = [
    ["bench.queue_throughput", "--messages", "300"],
    ["bench.billed_time", "--tasks", "3"],
    ["bench.memory", "--sizes-mb", "2,8"],
    ["bench.relay_speed", "--mb", "32", "--runs", "1"],
    ["bench.store_ops", "--tasks", "5", "--ops", "200", "--rounds", "1"],
    ["bench.two_workers", "--tasks", "3"],
    ["bench.nudge_latency", "--trials", "2", "--lag-s", "0.5", "--wait-s", "1"],
    ["bench.webhook_latency", "--tasks", "4"],
    ["bench.redis_cost", "--tasks", "5", "--idle-s", "1"],
    ["bench.peers", "--smoke"],  # without the bench extra: scf-relay only, saying which peers it skipped
    ["bench.charts"],
    ["bench.targets"],
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small runs, seconds each")
    args = parser.parse_args(argv)
    failed = []
    env = {**os.environ, "BENCH_RUN_STARTED": str(time.time())}
    if args.smoke:  # smoke numbers are not the recorded ones
        env["BENCH_RESULTS_DIR"] = tempfile.mkdtemp(prefix="bench-smoke-")
    for command in SMOKE if args.smoke else FULL:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, env=env)
        print(f"{' '.join(command)}: exit {done.returncode} in {time.monotonic() - started:.1f} s")
        print(done.stdout.rstrip())
        if done.returncode != 0:
            failed.append(command[0])
            print(done.stderr[-3000:], file=sys.stderr)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
