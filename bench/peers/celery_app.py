"""The chain on Celery (Redis broker, no result backend): ``celery -A bench.peers.celery_app worker --pool threads
--concurrency 4`` (one process per ``-n`` name).

Two tasks: ``submit`` schedules the first ``poll`` with ``apply_async(countdown=)`` (Celery's ETA message); a
``poll`` that finds the job still running schedules the next one the same way; the one that finds it ended
downloads and reports. Celery's defaults otherwise (prefetch, acks, mingle/gossip/heartbeat), results ignored.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from bench.peers.chain import ENV_PREFIX, ChainConfig, chain, mark_ready

app = Celery("bench_peers", broker=os.environ.get(f"{ENV_PREFIX}REDIS", "redis://127.0.0.1:6379/11"))
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)


@worker_ready.connect
def _ready(**_: Any) -> None:
    mark_ready(ChainConfig.from_env())


@app.task(name="bench.submit")
def submit(task_id: str) -> None:
    steps = chain()
    vendor_task_id = steps.submit(task_id)
    poll.apply_async((task_id, vendor_task_id, 0), countdown=steps.first_poll_s)


@app.task(name="bench.poll")
def poll(task_id: str, vendor_task_id: str, polls: int) -> None:
    steps = chain()
    found = steps.poll(vendor_task_id, polls)
    if found.urls or found.failed:
        steps.finish(task_id, vendor_task_id, found)
    else:
        poll.apply_async((task_id, vendor_task_id, polls + 1), countdown=found.delay_s)


def enqueue(task_ids: list[str]) -> None:
    """Send one ``submit`` per task (from the benchmark's process)."""
    for task_id in task_ids:
        submit.delay(task_id)
