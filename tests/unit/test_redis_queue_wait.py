"""Waiting receivers on Redis block instead of polling, and still take every message on time.

The gate's decisions (who blocks, for how long) are checked with a virtual queue clock and a recording ``block``;
the real-Redis tests wait fractions of a second. The idle rate is measured on a redis-server of the test's own
(``INFO commandstats`` counts every client of a server, so the shared one would count other tests too).
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from bench.private_redis import command_calls, private_redis
from jobqueue.queue.redis import RedisQueue
from jobqueue.queue.wake_gate import MAX_BLOCK_S, WakeGate

pytestmark = pytest.mark.redis


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


# -- the gate, in virtual time -----------------------------------------------------------------------------------
def test_an_empty_receiver_blocks_until_the_next_due_time_of_the_queue_clock():
    clock = VirtualClock()
    gate: WakeGate[str] = WakeGate(clock)
    timeouts: list[float] = []
    answers = iter([([], clock.now + 0.25), (["due"], None)])

    def block(timeout_s: float) -> bool:
        timeouts.append(timeout_s)
        clock.now += timeout_s  # the due time has come when the block ends
        return False

    assert gate.receive(lambda: next(answers), block, wait_s=3) == ["due"]
    assert timeouts == [pytest.approx(0.25)]


def test_a_block_never_outlasts_the_cap_or_the_callers_wait():
    gate: WakeGate[str] = WakeGate(VirtualClock())
    timeouts: list[float] = []

    def block(timeout_s: float) -> bool:
        timeouts.append(timeout_s)
        time.sleep(timeout_s)
        return False

    assert gate.receive(lambda: ([], None), block, wait_s=0.05) == []
    assert len(timeouts) == 1 and 0 < timeouts[0] <= 0.05
    assert MAX_BLOCK_S <= 9  # below the 10 s socket timeout of the queue's clients


def test_only_one_thread_blocks_on_the_server_and_the_others_make_no_call():
    gate: WakeGate[str] = WakeGate(VirtualClock())
    attempts, blocks, in_block, most_in_block = [0], [0], [0], [0]
    lock = threading.Lock()

    def attempt() -> tuple[list[str], float | None]:
        with lock:
            attempts[0] += 1
        return [], None

    def block(timeout_s: float) -> bool:
        with lock:
            blocks[0] += 1
            in_block[0] += 1
            most_in_block[0] = max(most_in_block[0], in_block[0])
        time.sleep(timeout_s)
        with lock:
            in_block[0] -= 1
        return False

    first = threading.Thread(target=gate.receive, args=(attempt, block, 0.4))
    first.start()
    time.sleep(0.05)  # the first thread is the listener now
    others = [threading.Thread(target=gate.receive, args=(attempt, block, 0.2)) for _ in range(3)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=5)
    assert most_in_block[0] == 1
    assert attempts[0] == 1, "receivers that found a listener sleeping made no receive"


# -- on Redis ----------------------------------------------------------------------------------------------------
def _timed_receive(queue: RedisQueue, wait_s: float, out: list) -> None:
    started = time.monotonic()
    got = queue.receive(1, visibility_timeout_s=30, wait_s=wait_s)
    out.append((time.monotonic() - started, got))


def test_a_delayed_message_wakes_a_blocked_receiver_when_it_falls_due(redis_url):
    with RedisQueue.from_url(redis_url) as queue:
        queue.send("later", delay_s=0.3)
        out: list = []
        _timed_receive(queue, 3.0, out)
    waited, got = out[0]
    assert [m.body for m in got] == ["later"]
    assert 0.25 <= waited < 1.0


def test_an_earlier_delayed_message_wakes_a_receiver_sleeping_until_a_later_one(redis_url):
    with RedisQueue.from_url(redis_url) as queue, RedisQueue.from_url(redis_url) as sender:
        queue.send("much later", delay_s=30)
        out: list = []
        receiver = threading.Thread(target=_timed_receive, args=(queue, 3.0, out))
        receiver.start()
        time.sleep(0.2)  # asleep until the 30 s one (or its wait) by now
        sender.send("soon", delay_s=0.2)
        receiver.join(timeout=5)
    waited, got = out[0]
    assert [m.body for m in got] == ["soon"]
    assert waited < 1.0


def test_a_sent_message_wakes_a_blocked_receiver_at_once(redis_url):
    with RedisQueue.from_url(redis_url) as queue, RedisQueue.from_url(redis_url) as sender:
        out: list = []
        receiver = threading.Thread(target=_timed_receive, args=(queue, 3.0, out))
        receiver.start()
        time.sleep(0.2)
        sender.send("now")
        receiver.join(timeout=5)
    waited, got = out[0]
    assert [m.body for m in got] == ["now"]
    assert waited < 0.6


def test_an_idle_queue_with_four_waiting_threads_costs_under_five_commands_a_second():
    window_s, threads_n = 2.0, 4
    with private_redis() as url:
        server = redis.Redis.from_url(url, decode_responses=True)
        with RedisQueue.from_url(f"{url}?prefix=idle") as queue:
            queue.send("done before the window")
            [message] = queue.receive(1, visibility_timeout_s=60)
            queue.delete(message.receipt)
            stop = threading.Event()

            def loop() -> None:
                while not stop.is_set():
                    queue.receive(8, visibility_timeout_s=60, wait_s=1.0)

            threads = [threading.Thread(target=loop) for _ in range(threads_n)]
            for thread in threads:
                thread.start()
            time.sleep(0.3)  # each thread's first look at the queue is done
            before = sum(command_calls(server).values())
            time.sleep(window_s)
            after = sum(command_calls(server).values())
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
        server.close()
    assert (after - before) / window_s <= 5, f"{after - before} commands in {window_s} s"
