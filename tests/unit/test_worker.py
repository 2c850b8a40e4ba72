"""The Worker in-process: SQLite backends, the real RunningHub emulator and report receiver on loopback."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time

import pytest

from bench.two_workers import fast_pipelines
from jobqueue.queue.redis import RedisQueue
from scf_relay.demo.stack import LocalStack
from scf_relay.worker import Worker
from vendors.emulator.media import make_jpeg

pytestmark = pytest.mark.timeout(60)
PIPELINES = ("model_pose12", "promo_poster", "video_tryon")


def _stack(tmp_path, **emulator) -> LocalStack:
    knobs = {"job_s": 0.1, "queue_s": 0.05, "concurrency": 100, "seed": 1, **emulator}
    env = {"RELAY_PIPELINES": str(fast_pipelines(tmp_path)), "RELAY_RECEIVE_BATCH": "1"}
    return LocalStack(tmp_path / "relay", emulator=knobs, env=env)


def _enqueue(stack: LocalStack, n_tasks: int) -> list[str]:
    ids = [f"w-{i:02d}" for i in range(n_tasks)]
    for i, task_id in enumerate(ids):
        stack.deliver(stack.upload(task_id, "seller-1", PIPELINES[i % 3], make_jpeg(seed=i)))
    return ids


def test_until_idle_reports_every_task_exactly_once_and_writes_health(tmp_path, relay_home):
    health = tmp_path / "health.json"
    with _stack(tmp_path) as stack:
        ids = _enqueue(stack, 6)
        worker = Worker(stack.svc, 3, idle_sleep_s=0.05, health_file=health, heartbeat_s=0.2)

        summary = worker.run(until_idle=True)

        stack.refresh()
        assert {(v.status, v.reports) for v in stack.views.values()} == {("done", 1)}
        assert len(stack.emulator.tasks) == len(ids)  # one vendor submission per task
        assert stack.svc.queue.stats().pending == 0
    assert summary["exit_code"] == 0 and summary["stopped_by"] == "idle"
    assert summary["errors"] == 0 and summary["received"] >= 2 * len(ids)  # submit, poll (+ collect, audit, report)
    beat = json.loads(health.read_text())
    assert beat["pid"] == os.getpid() and beat["state"] == "stopped" and beat["concurrency"] == 3
    assert beat["received"] == summary["received"] and beat["last_step_at"] <= beat["at"]


def test_stop_from_another_thread_finishes_the_step_in_flight(tmp_path, relay_home):
    health = tmp_path / "health.json"
    with _stack(tmp_path, delay_s=0.8) as stack:  # every vendor answer takes 0.8 s: the steps are slow
        _enqueue(stack, 4)
        worker = Worker(stack.svc, 2, idle_sleep_s=0.05, health_file=health, heartbeat_s=0.1)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(worker.run()), daemon=True)
        runner.start()
        _wait(lambda: stack.emulator.requests and health.exists(), "a vendor request in progress, a heartbeat")
        assert json.loads(health.read_text())["state"] == "running"

        stopped_at = time.monotonic()
        worker.stop()
        runner.join(timeout=5)

        assert not runner.is_alive(), "run() did not return after stop()"
        assert time.monotonic() - stopped_at < 3.0
        stats = stack.svc.queue.stats()
        assert stats.in_flight == 0, "a received message was left unfinished"  # RELAY_RECEIVE_BATCH=1
        assert stats.ready + stats.delayed == 4  # each task handed on to its next hop, none lost
        assert result["exit_code"] == 0 and result["stopped_by"] == "stop"
        assert result["received"] == result["sent"] + result["acked"] + result["dead_lettered"]
    assert json.loads(health.read_text())["state"] == "stopped"


def test_gives_up_with_exit_code_1_when_the_queue_backend_stays_down(tmp_path, relay_home):
    with socket.socket() as probe:  # a port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with _stack(tmp_path) as stack:
        queue = RedisQueue.from_url(f"redis://127.0.0.1:{port}/0?prefix=down")
        svc = dataclasses.replace(stack.svc, queue=queue)
        worker = Worker(svc, 2, give_up_after_s=0.5, backend_retry_s=0.05)

        started = time.monotonic()
        summary = worker.run()

        assert time.monotonic() - started < 5
        assert summary["exit_code"] == 1 and summary["stopped_by"] == "backend_failed"
        queue.close()


def test_recovers_when_the_queue_backend_comes_back(tmp_path, relay_home):
    with _stack(tmp_path) as stack:
        real = stack.svc.queue
        failures = iter(range(3))

        class Flaky:  # the real queue behind a receive that fails three times, like a Redis restart
            def receive(self, *args, **kwargs):
                if next(failures, None) is not None:
                    raise ConnectionError("redis restarting")
                return real.receive(*args, **kwargs)

            def __getattr__(self, name):
                return getattr(real, name)

        _enqueue(stack, 1)
        worker = Worker(dataclasses.replace(stack.svc, queue=Flaky()), 1, idle_sleep_s=0.05, backend_retry_s=0.05)
        summary = worker.run(until_idle=True)

        stack.refresh()
        assert [(v.status, v.reports) for v in stack.views.values()] == [("done", 1)]
        assert summary["exit_code"] == 0 and summary["stopped_by"] == "idle"


def test_rejects_zero_concurrency(tmp_path, relay_home):
    with _stack(tmp_path) as stack, pytest.raises(ValueError):
        Worker(stack.svc, 0)


def _wait(predicate, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
