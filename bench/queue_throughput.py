"""Queue throughput: messages per second for send, batch send and receive+delete, SQLite and real Redis.

    python -m bench.queue_throughput [--messages N] [--json] [--redis URL]

Each backend gets N single sends, N more in batches of ``max_batch``, then all 2N are received in batches
and deleted one by one (what a worker does). The bodies are job-message sized (~400 bytes). Results go to
``bench/results/queue_throughput.json``; ``--json`` prints that JSON instead of the table. The Redis run
uses a fresh key prefix on DB 15 (``RELAY_BENCH_REDIS`` or ``--redis`` to change) and removes its keys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from jobqueue.errors import QueueError
from jobqueue.queue.base import Queue

RESULTS_PATH = RESULTS_DIR / "queue_throughput.json"
DEFAULT_REDIS = os.environ.get("RELAY_BENCH_REDIS", "redis://127.0.0.1:6379/15")
BODY = json.dumps(
    {
        "v": 1,
        "task_id": "t" * 32,
        "user_id": "u" * 16,
        "pipeline": "model_pose12",
        "stage": "poll",
        "input": {"bucket": "relay-1250000000", "key": "input/" + "k" * 200, "etag": "e" * 32, "size": 12345},
        "seq": 3,
        "created_at": 1_700_000_000.0,
        "deadline_at": 1_700_003_600.0,
    }
)


def _rate(count: int, action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return round(count / (time.perf_counter() - started), 1)


def measure(queue: Queue, messages: int) -> dict[str, float]:
    """Messages per second of each phase, on an empty queue that is empty again afterwards."""

    def send_singly() -> None:
        for _ in range(messages):
            queue.send(BODY)

    def drain() -> None:
        left = 2 * messages
        while left:
            batch = queue.receive(queue.max_batch, visibility_timeout_s=300)
            if not batch:
                raise RuntimeError(f"{left} messages missing")
            for message in batch:
                queue.delete(message.receipt)
            left -= len(batch)

    return {
        "send_per_s": _rate(messages, send_singly),
        "send_batch_per_s": _rate(messages, lambda: queue.send_batch([BODY] * messages)),
        "receive_delete_per_s": _rate(2 * messages, drain),
    }


def run_sqlite(messages: int) -> dict[str, Any]:
    from jobqueue.queue.sqlite import SqliteQueue

    with tempfile.TemporaryDirectory() as folder, SqliteQueue(Path(folder) / "bench.db") as queue:
        return measure(queue, messages)


def run_redis(messages: int, redis_url: str) -> dict[str, Any]:
    from jobqueue.queue.redis import RedisQueue

    prefix = f"relaybench-{uuid.uuid4().hex[:8]}"
    with RedisQueue.from_url(f"{redis_url}?prefix={prefix}") as queue:
        try:
            return measure(queue, messages)
        except QueueError as exc:
            return {"error": str(exc)}
        finally:
            _remove_keys(redis_url, prefix)


def _remove_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    except redis.exceptions.RedisError:
        pass  # nothing was written if Redis is down
    finally:
        client.close()


def table(report: dict[str, Any]) -> str:
    lines = [
        f"queue throughput, {report['messages']} messages per phase (messages/second)",
        f"{'backend':<8} {'send':>10} {'send_batch':>12} {'recv+delete':>12}",
    ]
    for name, row in report["backends"].items():
        if "error" in row:
            lines.append(f"{name:<8} unavailable: {row['error']}")
            continue
        lines.append(
            f"{name:<8} {row['send_per_s']:>10,.0f} {row['send_batch_per_s']:>12,.0f} "
            f"{row['receive_delete_per_s']:>12,.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_throughput", description="queue throughput")
    parser.add_argument("--messages", type=int, default=5000, help="messages per phase (default 5000)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="redis URL without query (default: DB 15)")
    args = parser.parse_args(argv)

    report = {
        "benchmark": "queue_throughput",
        "messages": args.messages,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "backends": {"sqlite": run_sqlite(args.messages), "redis": run_redis(args.messages, args.redis)},
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2) if args.json else table(report))
    return report


if __name__ == "__main__":
    main()
