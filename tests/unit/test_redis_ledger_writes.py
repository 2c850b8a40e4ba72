"""A Redis ledger write touches only what changed: the indexes of the version it replaces are not written again.

Counted on a redis-server of the test's own (``INFO commandstats`` counts every client of a server).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from bench.private_redis import command_calls, delta, private_redis
from jobqueue.ledger.redis import RedisLedger
from relay_core.domain import Outcome, Status

pytestmark = pytest.mark.redis
NOW = 1_700_000_000.0


def test_a_hop_that_keeps_the_indexes_writes_only_the_record_and_a_changed_index_is_still_written():
    with private_redis() as url:
        server = redis.Redis.from_url(url, decode_responses=True)
        with RedisLedger.from_url(f"{url}?prefix=w") as ledger, RedisLedger.from_url(f"{url}?prefix=w") as other:
            ledger.claim_submit("t1", "tok", 60, deadline_at=NOW + 600, now=NOW)
            ledger.mark_sending("t1", "tok", NOW)
            ledger.record_submission("t1", "tok", "vendor-1", NOW)
            before = command_calls(server)
            assert ledger.advance("t1", 0, NOW + 1)
            writes = delta(command_calls(server), before)
            # the record this object just wrote is the start of the write: no load, and the only write is the
            # record itself (one SET that also returns the version it replaced); no index or vendor-id entry is
            # written again
            assert writes == {"evalsha": 1, "set": 1}

            # another ledger object changes the record: this one's memory no longer matches the stored version
            other.record_outcome("t1", Outcome(Status.DONE, result_keys=("k",)), NOW + 2)
            ledger.advance("t1", 1, NOW + 3)
            assert ledger.open_tasks(NOW + 10_000) == []
            assert [r.task_id for r in ledger.unreported(NOW + 10_000)] == ["t1"]
            assert ledger.by_vendor_task("vendor-1").task_id == "t1"
        server.close()


def test_an_insert_writes_only_the_index_entries_the_new_record_has():
    with private_redis() as url:
        server = redis.Redis.from_url(url, decode_responses=True)
        with RedisLedger.from_url(f"{url}?prefix=w") as ledger:
            ledger.begin_hop("t0", 0, 60, NOW, "u1")  # the script is loaded
            before = command_calls(server)
            ledger.begin_hop("t1", 0, 60, NOW, "u1")  # a new record: in neither index
            writes = delta(command_calls(server), before)
            assert writes == {"evalsha": 1, "set": 1}  # a first hop guesses an insert: no load, no ZREM

            before = command_calls(server)
            ledger.claim_submit("t2", "tok", 60, deadline_at=NOW + 600, now=NOW)  # a new record with a deadline
            assert delta(command_calls(server), before)["zadd"] == 1
            assert [r.task_id for r in ledger.open_tasks(NOW + 10_000)] == ["t2"]

            # a member an expired record left behind is skipped by readers and replaced by the task's next write
            server.zadd("w:deadlines", {"t3": NOW - 5})
            ledger.begin_hop("t3", 0, 60, NOW, "u1")
            assert [r.task_id for r in ledger.open_tasks(NOW + 10_000)] == ["t2"]
            ledger.claim_submit("t3", "tok", 60, deadline_at=NOW + 900, now=NOW)
            assert server.zscore("w:deadlines", "t3") == NOW + 900
        server.close()


def test_a_lost_compare_and_set_puts_the_stored_record_back_and_writes_no_index():
    with private_redis() as url:
        server = redis.Redis.from_url(url, decode_responses=True)
        with RedisLedger.from_url(f"{url}?prefix=w") as ledger:
            ledger.claim_submit("t1", "tok", 60, deadline_at=NOW + 600, now=NOW)
            record = ledger.get("t1")
            stored, deadlines = server.get("w:task:t1"), server.zrange("w:deadlines", 0, -1, withscores=True)
            done = Outcome(Status.DONE, result_keys=("k",))  # the write would move the task between the indexes
            changed = replace(record, version=record.version + 2, outcome=done, outcome_at=NOW + 1)

            assert not ledger._save(changed, record.version + 1)  # a version the store does not hold
            assert server.get("w:task:t1") == stored
            assert server.zrange("w:deadlines", 0, -1, withscores=True) == deadlines
            assert server.zcard("w:unreported") == 0
            assert 0 < server.ttl("w:task:t1") <= ledger.retention_s

            assert not ledger._save(replace(changed, task_id="t9"), 4)  # no record at all: none is left behind
            assert server.exists("w:task:t9") == 0
            assert ledger.get("t1") == record
        server.close()


@pytest.mark.parametrize("start", ["peek", "lease"])
def test_a_hop_whose_cached_record_missed_the_hop_before_loads_instead_of_losing_a_compare_and_set(start):
    """Hop 2 runs in the process that ran hop 0; hop 1 ran in another. The cached record's seq shows it missed hop
    1's end, so the hop starts from a fresh load: one GET (and for a lease, one write), no lost compare-and-set."""
    with private_redis() as url:
        server = redis.Redis.from_url(url, decode_responses=True)
        with RedisLedger.from_url(f"{url}?prefix=w") as ledger, RedisLedger.from_url(f"{url}?prefix=w") as other:
            ledger.begin_hop("t1", 0, 60, NOW, "u1")
            ledger.advance("t1", 0, NOW + 1)  # hop 0 ends here: this object caches seq 0
            other.begin_hop("t1", 1, 60, NOW + 2, "u1")
            other.advance("t1", 1, NOW + 3)  # hop 1 runs and ends elsewhere
            before = command_calls(server)
            if start == "peek":
                assert ledger.peek_hop("t1", 2, NOW + 4, "u1").record.seq == 1
                assert delta(command_calls(server), before) == {"get": 1}
            else:
                assert ledger.begin_hop("t1", 2, 60, NOW + 4, "u1").record.hop_seq == 2
                assert delta(command_calls(server), before) == {"get": 1, "evalsha": 1, "set": 1}
        server.close()
