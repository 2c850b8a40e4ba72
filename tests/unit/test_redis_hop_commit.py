"""The atomic hop end on one Redis (successor sent + seq advanced + message deleted in one script), and when it
is not used (another server or database, another backend)."""

from __future__ import annotations

import time

import pytest

from jobqueue.hop_commit import open_hop_commit
from jobqueue.ledger.redis import RedisLedger
from jobqueue.ledger.sqlite import SqliteLedger
from jobqueue.queue.redis import RedisQueue

pytestmark = pytest.mark.redis
NOW = 1_700_000_000.0


@pytest.fixture
def pair(redis_url):
    with RedisQueue.from_url(redis_url) as queue, RedisLedger.from_url(redis_url) as ledger:
        yield queue, ledger


def test_only_a_queue_and_a_ledger_on_one_server_and_database_get_it(redis_url, tmp_path, pair):
    queue, ledger = pair
    assert open_hop_commit(queue, ledger) is not None
    other_db = redis_url.replace("/15?", "/14?")
    with RedisLedger.from_url(other_db) as elsewhere, SqliteLedger(tmp_path / "l.db") as sqlite:
        assert open_hop_commit(queue, elsewhere) is None
        assert open_hop_commit(queue, sqlite) is None


def test_it_sends_the_successor_advances_and_deletes_in_one_script(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)

    assert commit.continue_hop(received, "t1", 0, "hop 1", 0.0, NOW + 1) is True
    assert ledger.get("t1").seq == 0
    nxt = queue.receive(1, 30)
    assert [m.body for m in nxt] == ["hop 1"]
    assert queue.stats().in_flight == 1  # "hop 0" is gone, only "hop 1" is in flight
    assert queue.delete(received.receipt) is False


def test_a_seq_that_does_not_rise_still_sends_and_deletes(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.advance("t1", 5, NOW)
    queue.send("old hop")
    received = queue.receive(1, 30)[0]
    assert commit.continue_hop(received, "t1", 3, "successor", 10.0, NOW + 1) is False
    assert ledger.get("t1").seq == 5
    stats = queue.stats()
    assert (stats.delayed, stats.in_flight) == (1, 0)


def test_a_record_changed_behind_the_commit_is_kept_and_the_hop_still_ends_once(redis_url, pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.begin_hop("t1", 0, 30, NOW)  # this ledger's cache now holds version 1
    with RedisLedger.from_url(redis_url) as other:
        other.mark_vendor_done("t1", "v-1", NOW + 1)  # behind its back: version 2
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]

    assert commit.continue_hop(received, "t1", 0, "hop 1", 0.0, NOW + 2) is True
    record = ledger.get("t1")
    assert (record.seq, record.vendor_done_at) == (0, NOW + 1)  # the other writer's change survived
    assert [m.body for m in queue.receive(5, 30)] == ["hop 1"]  # sent once, not once per try


def test_a_stale_receipt_leaves_the_message_to_its_new_receiver(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    first = queue.receive(1, 0.05)[0]
    time.sleep(0.1)  # the visibility timeout passes; another receiver gets the message
    second = queue.receive(1, 30)[0]
    assert commit.continue_hop(first, "t1", 0, "hop 1", 0.0, NOW) is True
    assert queue.delete(second.receipt) is True  # still there for the runner that holds it now
