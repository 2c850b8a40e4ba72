"""``scf-relay worker`` as real processes on the real Redis: SIGTERM, SIGKILL mid-step, two workers at once.

The test process runs the RunningHub emulator and the report receiver (a :class:`LocalStack` whose ``RELAY_*``
environment points the queue and the ledger at Redis) and hands uploads to the real producer shim; the workers
are subprocesses started with that environment, logging JSON lines to files the tests read.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from bench.two_workers import WorkerProcess, fast_pipelines, run_scenario
from scf_relay.demo.stack import LocalStack
from vendors.emulator.media import make_jpeg

pytestmark = [pytest.mark.timeout(60), pytest.mark.redis]
EMULATOR = {"job_s": 0.1, "queue_s": 0.05, "concurrency": 1000, "seed": 3}
STOP_REQUESTED = "stop requested: finishing in-flight steps (send again to exit at once)"


@pytest.fixture
def redis_stack(tmp_path, relay_home, redis_url):
    """A LocalStack on Redis with fast polls, one-message batches and a 5 s visibility timeout."""
    env = {
        "RELAY_QUEUE": redis_url,
        "RELAY_LEDGER": redis_url,
        "RELAY_PIPELINES": str(fast_pipelines(tmp_path)),
        "RELAY_RECEIVE_BATCH": "1",
        "RELAY_VISIBILITY_TIMEOUT_S": "5",
    }
    with LocalStack(tmp_path / "relay", emulator=dict(EMULATOR), env=env) as stack:
        yield stack


@pytest.fixture
def workers(tmp_path):
    """Start worker processes (``start(name, *args)``); any still running at the end is killed."""
    started: list[WorkerProcess] = []

    def start(name: str, *args: str) -> WorkerProcess:
        proc = WorkerProcess(tmp_path / f"{name}.log", *args, env=os.environ.copy())
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def _enqueue(stack: LocalStack, n_tasks: int, pipeline: str = "promo_poster") -> list[str]:
    ids = [f"p-{i:02d}" for i in range(n_tasks)]
    for i, task_id in enumerate(ids):
        stack.deliver(stack.upload(task_id, "seller-1", pipeline, make_jpeg(seed=i)))
    return ids


def _wait(predicate, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _assert_each_reported_once(stack: LocalStack, n_tasks: int) -> None:
    stack.refresh()
    assert [(v.status, v.reports) for v in stack.views.values()] == [("done", 1)] * n_tasks
    assert len(stack.emulator.tasks) == n_tasks  # invariant 2: one vendor submission per task


def test_sigterm_finishes_in_flight_steps_and_exits_0(redis_stack, workers):
    stack = redis_stack
    _enqueue(stack, 6)
    stack.emulator.config.delay_s = 0.5  # every vendor answer takes 0.5 s, so steps are in progress
    first = workers("first", "--concurrency", "2")
    _wait(lambda: stack.svc.queue.stats().in_flight > 0 and stack.emulator.requests, "a step in progress")

    first.send(signal.SIGTERM)
    signalled = time.monotonic()
    assert first.wait(timeout_s=10) == 0
    assert time.monotonic() - signalled < 5
    stopped = first.wait_for_log("worker stopped gracefully")
    assert stopped["stopped_by"] == "signal" and stopped["received"] > 0
    assert first.summary()["exit_code"] == 0
    messages = [line["msg"] for line in first.logs()]
    after_stop = messages[messages.index(STOP_REQUESTED) :]
    assert "step" in after_stop, "no step in progress at SIGTERM was finished"
    assert stack.svc.queue.stats().in_flight == 0, "the worker left a received message unfinished"

    stack.emulator.config.delay_s = 0
    second = workers("second", "--concurrency", "2", "--until-idle", "--idle-sleep-s", "0.05")
    assert second.wait(timeout_s=30) == 0
    _assert_each_reported_once(stack, 6)


def test_sigkill_mid_step_redelivers_and_the_task_finishes_once(redis_stack, workers):
    stack = redis_stack
    (task_id,) = _enqueue(stack, 1)
    first = workers("first", "--concurrency", "2")
    _wait(lambda: (r := stack.svc.ledger.get(task_id)) is not None and r.vendor_task_id, "the vendor submission")
    stack.emulator.config.delay_s = 30  # from now on the vendor holds every answer: the next step hangs in it
    seen = len(stack.emulator.requests)
    _wait(lambda: len(stack.emulator.requests) > seen, "a held vendor request")
    assert stack.svc.queue.stats().in_flight == 1

    first.send(signal.SIGKILL)
    assert first.wait(timeout_s=5) == -signal.SIGKILL
    stack.emulator.config.delay_s = 0
    second = workers("second", "--concurrency", "2", "--until-idle", "--idle-sleep-s", "0.05")

    redelivered = second.wait_for_log("message redelivered", timeout_s=15, task_id=task_id)
    assert redelivered["receive_count"] == 2
    assert second.wait(timeout_s=20) == 0
    _assert_each_reported_once(stack, 1)


def test_second_signal_exits_at_once(redis_stack, workers):
    stack = redis_stack
    _enqueue(stack, 2)
    stack.emulator.config.delay_s = 30  # the first step hangs in the vendor call
    worker = workers("worker", "--concurrency", "1")
    _wait(lambda: stack.emulator.requests, "a held vendor request")

    worker.send(signal.SIGTERM)
    worker.wait_for_log(STOP_REQUESTED)
    worker.send(signal.SIGTERM)

    assert worker.wait(timeout_s=5) == 128 + signal.SIGTERM
    worker.wait_for_log("second signal: exiting now; in-flight steps will be redelivered")


def test_a_bad_queue_url_exits_2_with_one_line(monkeypatch, relay_home, workers):
    monkeypatch.setenv("RELAY_QUEUE", "foo://nowhere")
    monkeypatch.setenv("RELAY_BACKEND_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RELAY_CALLBACK_SECRET", "s3cret-for-test")
    monkeypatch.setenv("RUNNINGHUB_API_KEY", "key-for-test")
    worker = workers("bad", "--concurrency", "1")

    assert worker.wait(timeout_s=15) == 2
    assert worker.summary() == {
        "ok": False,
        "error": "RELAY_QUEUE: unsupported queue URL scheme 'foo' (use sqlite://, redis://, cmq://)",
    }


def test_two_workers_on_one_redis_report_each_task_exactly_once(tmp_path, relay_home, redis_url):
    result = run_scenario(
        tmp_path / "two",
        n_tasks=40,
        workers=2,
        concurrency=2,
        env={"RELAY_QUEUE": redis_url, "RELAY_LEDGER": redis_url},
        timeout_s=40,
    )
    assert result["finished"] and result["exit_codes"] == [0, 0]
    assert result["exactly_one_report"] and result["done"] == result["reports"] == 40
    assert result["vendor_submissions"] == 40 and result["messages_enqueued_by_shim"] == 80
    assert all(steps > 0 for steps in result["steps_per_worker"]), "one worker did all the work"
    assert result["step_errors"] == 0
