"""Polls without the hop's lease, on Redis (queue and ledger on one server): a poll that finds the vendor job still
running writes the task's record once, with its hop's end, and takes no lease; duplicates of such a hop cost a
status query each but never fork the task's chain."""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest

from bench.two_workers import fast_pipelines
from consumer.drain import Budget, Hooks, drain
from jobqueue.message import Stage, parse
from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack
from vendors.emulator.media import make_jpeg

pytestmark = [pytest.mark.timeout(60), pytest.mark.redis]
POLL_EVERY_HALF_SECOND = "poll = { first_s = 0.5, base_s = 0.5, factor = 1.0, max_s = 0.5, queued_factor = 1.0 }"


def _stack(tmp_path, redis_url, job_s: float = 2.0):
    settings = {
        "RELAY_QUEUE": redis_url,
        "RELAY_LEDGER": redis_url,
        "RELAY_PIPELINES": str(fast_pipelines(tmp_path, POLL_EVERY_HALF_SECOND)),
        "RELAY_POLL_FROM_ESTIMATE": "0",
    }
    emulator = {"job_s": job_s, "queue_s": 0.0, "concurrency": 1000, "seed": 5}
    return LocalStack(tmp_path / "relay", clock=VirtualClock(), emulator=emulator, env=settings)


def _run(stack, received: list[tuple[Stage, int]], rounds: int = 100) -> None:
    for _ in range(rounds):
        drain(stack.svc, Budget(5.0), hooks=Hooks(on_receive=lambda m: received.append(_hop(m))))
        stack.refresh()
        if all(view.terminal() for view in stack.views.values()):
            return
        stack.clock.advance(0.5)
    raise AssertionError("tasks did not finish")


def _count_leases(ledger) -> list[int]:
    """The seqs of the hops ``ledger.begin_hop`` is asked to lease, from now on."""
    begun: list[int] = []
    real_begin = ledger.begin_hop

    def begin_hop(task_id, seq, *args, **kwargs):
        begun.append(seq)
        return real_begin(task_id, seq, *args, **kwargs)

    ledger.begin_hop = begin_hop
    return begun


def _status_queries(stack) -> int:
    return sum(1 for _, path, _ in stack.emulator.requests if path.endswith("/outputs"))


def test_a_poll_that_finds_the_job_running_writes_once_and_takes_no_lease(tmp_path, redis_url):
    with _stack(tmp_path, redis_url) as stack:
        ledger = stack.svc.ledger
        begun = _count_leases(ledger)
        stack.deliver(stack.upload("t1", "u1", "model_pose12", make_jpeg(1)))
        _run(stack, [])
        polls = _status_queries(stack)
        record = ledger.get("t1")
        [report] = stack.receiver.by_task()["t1"]
    assert report.body["status"] == "done" and polls >= 3
    assert begun == [0, polls]  # SUBMIT, then only the poll that found the job done took its hop's lease
    assert record.seq == polls and record.reported_at is not None  # REPORT joined the last poll's hop
    # SUBMIT's three writes (lease + claim, sending, its end), one per poll that found the job running (its end),
    # then the last poll's lease, its outcome and the report's end
    assert record.version == 3 + (polls - 1) + 3


def test_copies_of_a_poll_hop_racing_without_a_lease_never_fork_the_chain(tmp_path, redis_url):
    """Three copies of the first poll hop ask the vendor at the same moment while the job runs: each costs its
    status query, only the first end sends the next poll, so every later hop runs once and the task is reported
    once."""
    received: list[tuple[Stage, int]] = []
    with _stack(tmp_path, redis_url, job_s=3.0) as stack:
        vendor = stack.svc.vendors["runninghub"]
        real_status, together, calls = vendor.status, threading.Barrier(3, timeout=10), itertools.count()

        def status(vendor_task_id):
            if next(calls) < 3:
                together.wait()  # the three copies are all in their status query before any goes on
            return real_status(vendor_task_id)

        vendor.status = status
        stack.deliver(stack.upload("t1", "u1", "model_pose12", make_jpeg(1)))
        drain(stack.svc, Budget(5.0))  # SUBMIT: the first poll now waits in the queue
        record = stack.svc.ledger.get("t1")
        first_poll = parse(record.poll_message).replace(vendor_task_id=record.vendor_task_id)
        for _ in range(2):  # redeliveries of the same hop, as a queue may make them
            stack.svc.queue.send(first_poll.dumps(), 0.5)
        stack.clock.advance(0.5)
        runners = [threading.Thread(target=_run_one, args=(stack, received)) for _ in range(3)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        assert not together.broken
        _run(stack, received)
        polls = _status_queries(stack)
        reports = stack.receiver.by_task()["t1"]
        final = stack.svc.ledger.get("t1")
    hops = Counter(seq for stage, seq in received if stage is Stage.POLL)
    assert hops[1] == 3 and all(count == 1 for seq, count in hops.items() if seq != 1)
    assert polls == sum(hops.values())  # a copy cost its status query, nothing more
    assert [r.body["status"] for r in reports] == ["done"] and final.reported_at is not None
    assert stack.emulator.requests.count(("POST", "/task/openapi/create", 200)) == 1


def _run_one(stack, received: list[tuple[Stage, int]]) -> None:
    drain(stack.svc, Budget(5.0), max_messages=1, hooks=Hooks(on_receive=lambda m: received.append(_hop(m))))


def _hop(message) -> tuple[Stage, int]:
    msg = parse(message.body)
    return msg.stage, msg.seq


def test_without_one_redis_for_queue_and_ledger_every_poll_takes_its_lease(tmp_path):
    """On SQLite the hop's end is not one atomic step, so a poll's successor could not wait for its seq to rise:
    every poll leases its hop as before."""
    settings = {
        "RELAY_PIPELINES": str(fast_pipelines(tmp_path, POLL_EVERY_HALF_SECOND)),
        "RELAY_POLL_FROM_ESTIMATE": "0",
    }
    emulator = {"job_s": 2.0, "queue_s": 0.0, "concurrency": 1000, "seed": 5}
    with LocalStack(tmp_path / "relay", clock=VirtualClock(), emulator=emulator, env=settings) as stack:
        assert stack.svc.hop_commit is None
        begun = _count_leases(stack.svc.ledger)
        stack.deliver(stack.upload("t1", "u1", "model_pose12", make_jpeg(1)))
        _run(stack, [])
        polls = _status_queries(stack)
    assert polls >= 3 and begun[: polls + 1] == list(range(polls + 1))
