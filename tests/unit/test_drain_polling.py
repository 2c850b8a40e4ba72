"""The drain long-polls and calls the queue idle only after consecutive empty receives (docs/platform.md §2:
an empty receive does not prove an empty queue). Against the local CMQ server, whose ``pull_lag_s`` keeps a
fresh message unreceivable for a while, like the delivery delay Tencent documents."""

from __future__ import annotations

import time

import pytest

from scf_relay.demo.stack import LocalStack
from tests.servers.cmq_server import LocalCmqServer

SECRET_ID, SECRET_KEY, TOKEN = "AKIDdrainpolling", "drain-polling-key", "drain-polling-token"


@pytest.fixture
def cmq():
    with LocalCmqServer(SECRET_ID, SECRET_KEY, TOKEN, max_real_wait_s=5.0) as server:
        server.create_queue("relay_dead", visibility_timeout_s=1)
        server.create_queue("relay_jobs", visibility_timeout_s=30, dlq="relay_dead", max_receive_count=5)
        yield server


def stack(tmp_path, cmq: LocalCmqServer, **env: str) -> LocalStack:
    return LocalStack(
        tmp_path,
        env={
            "RELAY_QUEUE": f"cmq://relay_jobs?region=gz&dlq=relay_dead&endpoint={cmq.endpoint}",
            "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
            **env,
        },
    )


def count_receives(cmq: LocalCmqServer) -> list[int]:
    """Count the broker's receives, empty ones included (the server's ``calls`` lists only successes)."""
    counted = [0]
    receive = cmq.broker.receive

    def counting(*args, **kwargs):
        counted[0] += 1
        return receive(*args, **kwargs)

    cmq.broker.receive = counting  # type: ignore[method-assign]
    return counted


def test_idle_only_after_consecutive_empty_receives(tmp_path, cmq):
    counted = count_receives(cmq)
    with stack(tmp_path, cmq, RELAY_RECEIVE_WAIT_S="0", RELAY_IDLE_RECEIVES="3") as local:
        stats = local.tick(budget_s=30)
    assert stats.stopped_by == "idle" and stats.received == 0
    assert counted[0] == 3


def test_a_late_delivered_message_is_found_by_the_long_poll(tmp_path, cmq):
    """With a 0 s wait and one receive (the old drain) a nudge finds nothing; a 2 s long poll finds it."""
    cmq.broker.pull_lag_s = 1.0
    with stack(tmp_path, cmq, RELAY_RECEIVE_WAIT_S="2", RELAY_IDLE_RECEIVES="1") as local:
        local.svc.queue.send("not a job message: dead-lettered, but received")
        started = time.monotonic()
        stats = local.tick(budget_s=30)
    assert stats.received == 1, stats
    assert time.monotonic() - started < 10


def test_the_wait_stays_inside_the_budget():
    from consumer.drain import receive_wait

    assert receive_wait(3.0, float("inf")) == 3.0
    assert receive_wait(3.0, 10.0) == 3.0
    assert receive_wait(3.0, 1.7) == 1.0  # CMQ rounds waits up to whole seconds: never past the budget
    assert receive_wait(3.0, 0.4) == 0.0
    assert receive_wait(0.0, 10.0) == 0.0
