"""The SQLite queue shared by several processes (spawned, like separate workers) and threads at once.

Property: with every receiver deleting what it gets, each message is delivered exactly once and none is
lost. A double delivery would show as a duplicate id or as a failed delete (a stale receipt).
"""

from __future__ import annotations

import multiprocessing
import threading
import time

from jobqueue.queue.sqlite import SqliteQueue

N_MESSAGES = 400
N_WORKERS = 4


def _drain(url: str, start, results) -> None:
    """Worker body: receive and delete until the queue has nothing ready; report ids and failed deletes."""
    queue = SqliteQueue.from_url(url)
    start.wait(timeout=60)
    received, failed_deletes = [], 0
    while batch := queue.receive(8, visibility_timeout_s=120):
        for message in batch:
            received.append(message.message_id)
            failed_deletes += not queue.delete(message.receipt)
        time.sleep(0.005)  # let the others in: on a loaded machine one process could otherwise drain it all
    queue.close()
    results.put((received, failed_deletes))


def _fill(url: str) -> list[str]:
    with SqliteQueue.from_url(url) as queue:
        return queue.send_batch([f'{{"n": {n}}}' for n in range(N_MESSAGES)])


def _check_exactly_once(sent: list[str], reports: list[tuple[list[str], int]], url: str) -> None:
    delivered = [message_id for ids, _ in reports for message_id in ids]
    assert sum(failed for _, failed in reports) == 0
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert sorted(delivered) == sorted(sent), "a message was lost"
    with SqliteQueue.from_url(url) as queue:
        assert queue.stats().pending == 0


def test_processes_receive_each_message_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared' / 'queue.db'}"
    sent = _fill(url)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(N_WORKERS), context.Queue()
    workers = [context.Process(target=_drain, args=(url, start, results)) for _ in range(N_WORKERS)]
    for worker in workers:
        worker.start()

    reports = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)

    assert [worker.exitcode for worker in workers] == [0] * N_WORKERS
    assert sum(1 for ids, _ in reports if ids) >= 2, "the workers did not actually share the queue"
    _check_exactly_once(sent, reports, url)


def test_threads_sharing_one_queue_object_receive_each_message_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    sent = _fill(url)
    shared = SqliteQueue.from_url(url)
    start, reports = threading.Barrier(N_WORKERS), []

    def drain() -> None:
        start.wait(timeout=30)
        received, failed = [], 0
        while batch := shared.receive(4, visibility_timeout_s=120):
            received.extend(m.message_id for m in batch)
            failed += sum(not shared.delete(m.receipt) for m in batch)
        reports.append((received, failed))

    threads = [threading.Thread(target=drain) for _ in range(N_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    shared.close()

    assert len(reports) == N_WORKERS
    _check_exactly_once(sent, reports, url)
