"""Benchmarks: each module is runnable (``python -m bench.<name>``) and writes JSON to :data:`RESULTS_DIR`."""

from __future__ import annotations

import os
from pathlib import Path

#: where results go; ``BENCH_RESULTS_DIR`` redirects smoke runs so they never overwrite recorded numbers
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).parent / "results")
