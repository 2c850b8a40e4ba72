"""``scf-relay demo``: N generated uploads across the packaged pipelines through a :class:`LocalStack`.

Each COS event is delivered to the shim twice (COS delivers at least once); the consumer ticks like a timer
until every task has its terminal report. ``scenario="mixed"`` makes some tasks fail at the vendor and some
blocked by moderation, to show those paths end with one ``failed`` report and no files under ``output/``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack

PIPELINE_CYCLE = ("model_pose12", "promo_poster", "video_tryon")
#: scenario "mixed": input markers the emulator obeys, by task index modulo 5
MIXED = {3: (b"emulate:fail", "failed 生成失败"), 4: (b"emulate:block", "failed 内容违规")}


@dataclass
class DemoOptions:
    tasks: int = 12
    backend_url: str | None = None
    callback_secret: str | None = None
    home: Path = Path(".relay/demo")
    timeout_s: float = 120.0
    scenario: str = "happy"
    emulator: dict = field(default_factory=dict)
    virtual_time: bool = False  # waits (vendor jobs, polls, retries) take no wall time


def run_demo(opts: DemoOptions, progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the demo; returns the JSON-able result (``ok`` is true when every task ended)."""
    from vendors.emulator.media import make_jpeg

    started = time.monotonic()
    # the demo prints a table: step logs only with RELAY_LOG_LEVEL=INFO
    quiet = {"RELAY_LOG_LEVEL": os.environ.get("RELAY_LOG_LEVEL", "ERROR")}  # routine retries would drown the table
    stack = LocalStack(
        opts.home,
        emulator=opts.emulator,
        backend_url=opts.backend_url,
        secret=opts.callback_secret,
        env=quiet,
        clock=VirtualClock() if opts.virtual_time else None,
    )
    with stack:
        run = secrets.token_hex(3)
        shim = {"events": 0, "enqueued": 0, "skipped": 0}
        for i, pipeline in zip(range(opts.tasks), itertools.cycle(PIPELINE_CYCLE)):
            marker, expected = MIXED.get(i % 5, (b"", "done")) if opts.scenario == "mixed" else (b"", "done")
            event = stack.upload(
                f"demo-{run}-{i:03d}",
                f"seller-{i % 4 + 1}",
                pipeline,
                make_jpeg(seed=i, marker=marker),
                expected=expected,
            )
            for summary in stack.deliver(event, times=2):
                shim["events"] += 1
                shim["enqueued"] += len(summary["enqueued"])
                shim["skipped"] += len(summary["skipped"])
        ok = stack.run_until_terminal(opts.timeout_s, progress)
        views = list(stack.views.values())
        return {
            "ok": ok and all(v.status in ("done", "failed") for v in views),
            "elapsed_s": round(time.monotonic() - started, 2),
            "home": str(stack.home),
            "bucket_dir": str(stack.bucket_dir),
            "backend_url": stack.backend_url,
            "shim": shim,
            "tasks": [vars(v) for v in views],
        }
