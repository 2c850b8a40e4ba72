"""The chain on Dramatiq (Redis broker): ``dramatiq bench.peers.dramatiq_app --processes 2 --threads 4``.

Two actors: ``submit`` sends the first ``poll`` with ``delay=`` (Dramatiq's delayed message); a ``poll`` that finds
the job still running sends the next one the same way; the one that finds it ended downloads and reports.
Dramatiq's defaults otherwise (middleware, retries, prefetch). The broker URL comes from ``BENCH_PEERS_REDIS``.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from bench.peers.chain import ENV_PREFIX, ChainConfig, chain, mark_ready


class ReadyFile(Middleware):
    """Touches the worker's ready file once its consumers run."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        mark_ready(ChainConfig.from_env())


broker = RedisBroker(url=os.environ.get(f"{ENV_PREFIX}REDIS", "redis://127.0.0.1:6379/11"))
broker.add_middleware(ReadyFile())
dramatiq.set_broker(broker)


@dramatiq.actor
def submit(task_id: str) -> None:
    steps = chain()
    vendor_task_id = steps.submit(task_id)
    poll.send_with_options(args=(task_id, vendor_task_id, 0), delay=int(steps.first_poll_s * 1000))


@dramatiq.actor
def poll(task_id: str, vendor_task_id: str, polls: int) -> None:
    steps = chain()
    found = steps.poll(vendor_task_id, polls)
    if found.urls or found.failed:
        steps.finish(task_id, vendor_task_id, found)
    else:
        poll.send_with_options(args=(task_id, vendor_task_id, polls + 1), delay=int(found.delay_s * 1000))


def enqueue(task_ids: list[str]) -> None:
    """Send one ``submit`` per task (from the benchmark's process)."""
    for task_id in task_ids:
        submit.send(task_id)
