"""The benchmarks stay runnable: ``python -m bench.run --smoke`` runs each one small and checks its soundness
(every task terminal, one report each). Recorded numbers are untouched (results go to a temp dir)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_run_passes():
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in (
        "queue_throughput",
        "billed_time",
        "memory",
        "relay_speed",
        "store_ops",
        "two_workers",
        "redis_cost",
        "peers",
    ):
        assert f"bench.{name}" in done.stdout
