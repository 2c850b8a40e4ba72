"""What the contract suite does not show about the Redis queue.

Concurrent receivers, key namespacing, URL parsing, late deletes, and the dead-letter reason when
``max_receive_count`` is lowered between runs.
"""

from __future__ import annotations

import threading

import pytest
import redis

from bench.private_redis import private_redis
from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.queue.base import QueueStats, exceeded_reason
from jobqueue.queue.redis import DELAYED_READ_S, RedisQueue

pytestmark = pytest.mark.redis

N_MESSAGES = 400
N_WORKERS = 4


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _keys(redis_url: str) -> list[str]:
    prefix = redis_url.split("prefix=")[1]
    client = redis.Redis.from_url(redis_url.split("?")[0], decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{prefix}*"))
    finally:
        client.close()


def test_threads_with_their_own_clients_receive_each_message_exactly_once(redis_url):
    with RedisQueue.from_url(redis_url) as queue:
        sent = queue.send_batch([f'{{"n": {n}}}' for n in range(N_MESSAGES)])
    start, reports = threading.Barrier(N_WORKERS), []

    def drain() -> None:
        with RedisQueue.from_url(redis_url) as own:
            start.wait(timeout=30)
            received, failed = [], 0
            while batch := own.receive(8, visibility_timeout_s=120):
                received.extend(m.message_id for m in batch)
                failed += sum(not own.delete(m.receipt) for m in batch)
            reports.append((received, failed))

    threads = [threading.Thread(target=drain) for _ in range(N_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    delivered = [message_id for ids, _ in reports for message_id in ids]
    assert len(reports) == N_WORKERS and sum(failed for _, failed in reports) == 0
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert sorted(delivered) == sorted(sent), "a message was lost"
    assert _keys(redis_url) == [], "a drained queue leaves no keys behind"


def test_every_key_is_under_prefix_and_queue_name(redis_url):
    with RedisQueue.from_url(f"{redis_url}&queue=other") as queue:
        queue.send("now")
        queue.send("later", delay_s=60)
        queue.receive(1, 30)
        _, prefix = redis_url.split("prefix=")

        keys = _keys(redis_url)

    assert keys and all(key.startswith(f"{prefix}:other:") for key in keys), keys
    with RedisQueue.from_url(redis_url) as default_queue:
        assert default_queue.stats() == QueueStats(0, 0, 0, 0), "queues of one prefix must not mix"


def test_url_defaults_and_bad_names():
    queue = RedisQueue.from_url("redis://127.0.0.1:6379/15")
    assert (queue.prefix, queue.queue) == ("relay", "jobs")
    assert queue.keys[0] == "relay:jobs:msg:"  # the start of every message hash
    queue.close()
    with pytest.raises(QueueConfigError):
        RedisQueue.from_url("redis://127.0.0.1:6379/15?prefix=bad%20prefix")
    with pytest.raises(QueueConfigError):
        RedisQueue.from_url("http://127.0.0.1:6379/15")


def test_password_in_url_stays_out_of_repr_and_errors():
    queue = RedisQueue.from_url("redis://:s3cret-pw@127.0.0.1:1/0?prefix=p")
    assert "s3cret" not in repr(queue)
    with pytest.raises(BackendUnavailable) as caught:
        queue.send("x")
    assert "s3cret" not in str(caught.value)
    queue.close()


def test_late_delete_after_expiry_works_until_someone_receives_again(redis_url):
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, clock=clock) as queue:
        queue.send("slow work")
        late = queue.receive(1, 10)[0]
        clock.now += 11
        queue.stats()  # expiry alone changes nothing stored; only a receive hands the message out again

        assert queue.delete(late.receipt) is True
        assert queue.receive(1, 10) == []
        assert queue.stats().pending == 0


def test_lowering_max_receive_count_dead_letters_with_the_real_count(redis_url):
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, max_receive_count=5, clock=clock) as generous:
        message_id = generous.send("x")
        for _ in range(3):
            generous.receive(1, 10)
            clock.now += 11

    with RedisQueue.from_url(redis_url, max_receive_count=2, clock=clock) as strict:
        assert strict.receive(1, 10) == []
        dead = strict.dead_letter_by_id(message_id)

    assert (dead.receive_count, dead.reason) == (3, exceeded_reason(3, 2))


def test_many_due_messages_come_back_oldest_first_a_bounded_number_per_call(redis_url):
    """receive.lua reads a set's head a few members at a time: delayed messages due in numbers far beyond that
    window, with different due times, all come back, in due order, about 1000 per call at most, and the
    in-flight ones whose deadline passed with them."""
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, clock=clock) as queue:
        sent = [queue.send(f"d{i}", delay_s=1 + (1500 - i) / 1000) for i in range(1500)]  # later ids due sooner
        not_yet = queue.send("later", delay_s=60)
        for _ in range(3):
            queue.send("taken")
        taken = queue.receive(3, 2)
        clock.now += 3  # every delayed one due, and the taken ones' visibility over

        seen = [m.message_id for m in queue.receive(1, 30)]
        moved = queue.client.llen(queue.keys[1]) + 1  # the ready list
        assert 1000 <= moved <= 1000 + 32 + 3
        while batch := queue.receive(16, 30):
            seen.extend(m.message_id for m in batch)

    assert len(seen) == len(set(seen)) == 1500 + 3
    delayed_order = [m for m in seen if m in set(sent)]
    assert delayed_order == [m for m in reversed(sent) if m in set(delayed_order)]
    assert {m.message_id for m in taken} <= set(seen) and not_yet not in seen


def test_an_expired_message_waits_behind_ready_ones_at_most_one_expiry_read_interval(redis_url):
    """receive.lua reads the in-flight set when asked (once per EXPIRY_READ_S of queue clock) or when nothing else
    is ready: a busy receive saves that read, and an expired message still comes back within the interval."""
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, clock=clock) as queue:
        in_flight, started = queue.keys[3], clock.now
        expired = queue.send("its runner died")
        assert [m.message_id for m in queue.receive(1, 10)] == [expired]  # visible again at t + 10
        ready = [queue.send(f"r{i}") for i in range(4)]
        clock.now += 9.8
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[0]]  # reads the in-flight set: next at t + 10.8

        clock.now += 0.7  # expired, but ready messages come first and no read is due
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[1]]
        assert queue.client.zscore(in_flight, expired) is not None  # not looked at

        clock.now += 0.4  # the interval is over: the next receive reads the set and puts it back behind r2, r3
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[2]]
        assert queue.client.zscore(in_flight, expired) is None
        assert [m.message_id for m in queue.receive(2, 60)] == [ready[3], expired]

        clock.now += 0.5  # no read is due, but nothing is ready: the receive reads the set, so its answer knows
        assert queue._receive_now(16, 60) == ([], pytest.approx(started + 9.8 + 60))  # r0's visibility deadline


def test_a_busy_receive_reads_a_set_head_only_when_it_is_due():
    """Counted on a redis-server of the test's own (``INFO commandstats`` counts every client of a server)."""
    clock = FakeClock()
    with private_redis() as url, RedisQueue.from_url(f"{url}?prefix=q", clock=clock) as queue:
        server = queue.client
        for i in range(4):
            queue.send(f"m{i}")
        queue.receive(1, 60)  # the first receive reads both sets' heads: nothing delayed
        before = server.info("commandstats")["cmdstat_zrange"]["calls"]
        queue.receive(1, 60)
        queue.receive(1, 60)
        assert server.info("commandstats")["cmdstat_zrange"]["calls"] - before == 0  # no read is due

        clock.now += 1.0
        queue.receive(1, 60)
        assert server.info("commandstats")["cmdstat_zrange"]["calls"] - before == 2  # both intervals are over

        queue.receive(1, 60)  # the last one
        stats = server.info("commandstats")
        zrange, rpop = stats["cmdstat_zrange"]["calls"], stats["cmdstat_rpop"]["calls"]
        assert queue._receive_now(1, 60)[0] == []  # empty: both set heads are read, so the answer knows every due
        stats = server.info("commandstats")  # time; with nothing moved from them, the list is not popped again
        assert (stats["cmdstat_zrange"]["calls"] - zrange, stats["cmdstat_rpop"]["calls"] - rpop) == (2, 1)


def test_a_due_delayed_message_joins_ready_ones_when_known_or_within_the_read_interval(redis_url):
    """While messages are ready, a receive looks at the delayed set when a delayed message its queue object sent
    (or saw at the set's head) is due, or DELAYED_READ_S after its last look: one another process sent waits that
    long at most, and each joins the ready list behind what is ready then."""
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, clock=clock) as queue, RedisQueue.from_url(redis_url, clock=clock) as other:
        delayed = queue.keys[2]
        ready = [queue.send(f"r{i}") for i in range(6)]
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[0]]  # reads the delayed set: empty
        mine = queue.send("mine", delay_s=0.5)
        theirs = other.send("theirs", delay_s=0.5)
        clock.now += 0.3
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[1]]  # nothing due that it knows of

        clock.now += 0.3  # both due: it knows of its own, so it looks, and both join the ready list
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[2]]
        assert queue.client.zscore(delayed, mine) is None and queue.client.zscore(delayed, theirs) is None

        late = other.send("theirs, later", delay_s=0.01)
        clock.now += 0.05  # due, unknown to this queue object, which looked 0.05 s ago
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[3]]
        assert queue.client.zscore(delayed, late) is not None
        clock.now += DELAYED_READ_S  # the interval is over: it looks again
        assert [m.message_id for m in queue.receive(1, 60)] == [ready[4]]
        assert queue.client.zscore(delayed, late) is None
        rest = [m.message_id for m in queue.receive(16, 60)]
        assert rest == [ready[5], mine, theirs, late] or rest == [ready[5], theirs, mine, late]


def test_a_receive_that_buried_everything_it_popped_asks_to_be_called_again(redis_url):
    clock = FakeClock()
    with RedisQueue.from_url(redis_url, max_receive_count=1, clock=clock) as queue:
        poisoned = queue.send("crashes every runner")
        queue.receive(1, 10)
        clock.now += 11
        other = queue.send("later work", delay_s=0)
        assert [m.message_id for m in queue.receive(1, 10)] == [other]  # reads in-flight: puts the poisoned back
        clock.now += 0.2  # no in-flight read is due: the pop finds only the poisoned message and buries it

        assert queue._receive_now(1, 10) == ([], clock.now)
        assert queue.dead_letter_by_id(poisoned) is not None
