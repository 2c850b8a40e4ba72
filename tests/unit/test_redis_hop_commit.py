"""The atomic hop end on one Redis (successor sent + seq advanced + message deleted in one script), and when it
is not used (another server or database, another backend)."""

from __future__ import annotations

import time

import pytest

from jobqueue.hop_commit import open_hop_commit
from jobqueue.ledger.base import HopState, Submission, SubmitState
from jobqueue.ledger.redis import RedisLedger
from jobqueue.ledger.sqlite import SqliteLedger
from jobqueue.queue.redis import RedisQueue
from relay_core.domain import ErrorReason, Outcome, Status

pytestmark = pytest.mark.redis
NOW = 1_700_000_000.0


def _body(queue, received):
    return queue.client.hget(queue.keys[0] + received.message_id, "body")


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


def test_a_submission_is_recorded_with_the_hop_end_or_not_at_all(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.begin_hop("t1", 0, 30, NOW)
    ledger.claim_submit("t1", "tok", 30, NOW + 600, NOW)
    ledger.mark_sending("t1", "tok", NOW)
    queue.send("submit")
    received = queue.receive(1, 30)[0]

    done = commit.continue_hop(received, "t1", 0, "poll", 5.0, NOW + 1, submission=Submission("tok", "v-1", "poll"))
    assert done is True
    record = ledger.get("t1")
    assert (record.seq, record.submit_state, record.vendor_task_id) == (0, SubmitState.SUBMITTED, "v-1")
    assert (record.poll_message, record.submitted_at) == ("poll", NOW + 1)
    assert ledger.by_vendor_task("v-1").task_id == "t1"  # the vendor-task index is written in the same script
    assert (queue.stats().delayed, queue.stats().in_flight) == (1, 0)


def test_a_submission_whose_claim_was_lost_is_not_recorded_and_the_hop_still_ends(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.claim_submit("t1", "tok", 30, NOW + 600, NOW)
    ledger.mark_sending("t1", "tok", NOW)
    ledger.claim_submit("t1", "other", 30, NOW + 600, NOW + 60)  # the lease lapsed mid-request: now ambiguous
    queue.send("submit")
    received = queue.receive(1, 30)[0]

    done = commit.continue_hop(received, "t1", 0, "poll", 5.0, NOW + 61, submission=Submission("tok", "v-1", "poll"))
    assert done is False
    record = ledger.get("t1")
    assert (record.seq, record.submit_state, record.vendor_task_id) == (0, SubmitState.AMBIGUOUS, None)
    assert (queue.stats().delayed, queue.stats().in_flight) == (1, 0)


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


def test_an_unleased_hop_end_sends_the_successor_only_with_the_write_that_raises_the_seq(pair):
    """Two runs of one poll hop, neither leased: the first end raises the seq and sends the next poll; the second
    only deletes its message, so the task's chain does not fork."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.begin_hop("t1", 0, 30, NOW)
    ledger.advance("t1", 0, NOW)
    version = ledger.get("t1").version
    queue.send("poll 1")
    queue.send("poll 1, again")
    first, second = queue.receive(2, 30)

    assert commit.continue_hop(first, "t1", 1, "poll 2", 0.0, NOW + 1, unleased=True) is True
    assert commit.continue_hop(second, "t1", 1, "poll 2, again", 0.0, NOW + 2, unleased=True) is False
    record = ledger.get("t1")
    assert (record.seq, record.version) == (1, version + 1)  # one write, by the first end
    assert [m.body for m in queue.receive(5, 30)] == ["poll 2"]
    assert queue.stats().in_flight == 1  # both received messages are gone; only "poll 2" is in flight


def test_an_unleased_hop_end_leaves_the_task_to_a_runner_that_took_the_hop_lease(pair):
    """A hint of the same hop found the job ended and took the hop's lease: the unleased run that found it still
    running a moment before ends without a successor, so only the leased runner goes on."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.begin_hop("t1", 0, 30, NOW)
    ledger.advance("t1", 0, NOW)
    assert ledger.begin_hop("t1", 1, 30, NOW + 1).state is HopState.RUN  # the hint's run
    queue.send("poll 1")
    received = queue.receive(1, 30)[0]

    assert commit.continue_hop(received, "t1", 1, "poll 2", 3.0, NOW + 2, unleased=True) is False
    assert ledger.get("t1").seq == 0  # left to the leased run's end
    stats = queue.stats()
    assert (stats.delayed, stats.ready, stats.in_flight) == (0, 0, 0)
    assert ledger.begin_hop("t1", 1, 30, NOW + 3).state is HopState.BUSY  # the lease is still the hint's


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


def test_a_stale_receipt_whose_hop_end_raises_the_seq_deletes_the_message_for_good(pair):
    """The write that raised the seq proves nobody ended the hop before, so the message still holds this hop: it
    goes, and its new receiver would find the hop handled."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    first = queue.receive(1, 0.05)[0]
    time.sleep(0.1)  # the visibility timeout passes; another receiver gets the message
    second = queue.receive(1, 30)[0]
    assert commit.continue_hop(first, "t1", 0, "hop 1", 0.0, NOW) is True
    assert queue.delete(second.receipt) is False and queue.stats().in_flight == 0
    assert [m.body for m in queue.receive(5, 30)] == ["hop 1"]


@pytest.mark.parametrize("end", ["continue", "end"])
def test_a_stale_runner_whose_hop_end_does_not_raise_the_seq_leaves_a_successor_handed_on_in_place(pair, end):
    """Runner B's lease lapsed; A ran the hop again and handed its successor on in place (the same message, A's
    receipt). B's late end raises nothing, so the receipt is checked and A's successor stays in the queue."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    stale = queue.receive(1, 0.05)[0]
    time.sleep(0.1)
    current = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)
    assert commit.hand_on(current, "t1", 0, "hop 1", 30, NOW + 1).state is HopState.RUN
    if end == "continue":
        assert commit.continue_hop(stale, "t1", 0, "duplicate hop 1", 5.0, NOW + 2) is False
    else:
        assert commit.end_hop(stale, "t1", 0, NOW + 2) is False
    assert _body(queue, current) == "hop 1" and queue.stats().in_flight == 1
    assert queue.delete(current.receipt) is True


# -- handing the next hop on in place ------------------------------------------------------------------
def test_hand_on_gives_the_received_message_the_successor_and_its_runner_the_lease(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)

    hop = commit.hand_on(received, "t1", 0, "hop 1", 60, NOW + 1, user_id="u1")

    assert hop.state is HopState.RUN
    record = ledger.get("t1")
    assert (record.seq, record.hop_seq, record.hop_until) == (0, 1, NOW + 61)
    assert hop.record == record
    assert queue.receive(5, 30) == []  # nothing new was sent: the message stays in flight with its new body
    assert _body(queue, received) == "hop 1"
    assert queue.stats().in_flight == 1
    assert ledger.begin_hop("t1", 1, 30, NOW + 2).state is HopState.BUSY  # a duplicate waits for the lease
    assert queue.delete(received.receipt) is True  # the receipt is still this runner's


def test_a_crash_after_hand_on_leaves_the_successor_in_the_queue(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)
    assert commit.hand_on(received, "t1", 0, "hop 1", 0.05, NOW).state is HopState.RUN
    time.sleep(0.1)  # the runner died: the renewed visibility passes

    again = queue.receive(1, 30)
    assert [m.body for m in again] == ["hop 1"]
    assert again[0].receive_count == 2


def test_hand_on_with_an_outcome_records_it_once_with_the_report_it_owes(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.record_outcome("t1", Outcome.failed(ErrorReason.TIMEOUT, "first"), NOW)
    queue.send("audit hop")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 4, 30, NOW)

    done = Outcome(Status.DONE, result_keys=("output/t1/1.png",))
    hop = commit.hand_on(received, "t1", 4, "report hop", 30, NOW + 1, outcome=done, report_message="report hop")

    assert hop.state is HopState.RUN
    assert hop.record.outcome.status is Status.FAILED  # the first outcome wins, as record_outcome's
    fresh = ledger.get("t1")
    assert (fresh.seq, fresh.hop_seq) == (4, 5)


def test_a_vendor_job_seen_finished_is_recorded_in_the_same_script_either_way(pair):
    """Handed on (the poll goes on to COLLECT in place) or continued (a successor sent): the vendor job's first
    sighting is written with the hop's end, never without it."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    for task, hand_on in (("t1", True), ("t2", False)):
        ledger.claim_submit(task, "tok", 30, NOW + 600, NOW)
        ledger.record_submission(task, "tok", f"v-{task}", NOW)
        queue.send("poll hop")
        received = queue.receive(1, 30)[0]
        ledger.begin_hop(task, 1, 30, NOW)
        if hand_on:
            assert commit.hand_on(received, task, 1, "collect", 60, NOW + 7, vendor_done=f"v-{task}").record
        else:
            assert commit.continue_hop(received, task, 1, "collect", 0.0, NOW + 7, vendor_done=f"v-{task}")
        record = ledger.get(task)
        assert (record.seq, record.vendor_done_at, record.vendor_task_id) == (1, NOW + 7, f"v-{task}")
        assert ledger.mark_vendor_done(task, f"v-{task}", NOW + 9).took_s is None  # the first sighting is taken


def test_a_successor_hop_already_begun_elsewhere_is_not_handed_on_and_nothing_is_written(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)
    ledger.begin_hop("t1", 1, 30, NOW)  # a webhook hint's runner holds hop 1
    before = ledger.get("t1")

    hop = commit.hand_on(received, "t1", 0, "hop 1", 30, NOW + 1, outcome=Outcome(Status.DONE))

    assert hop.state is HopState.BUSY  # hop 1 is leased to another runner
    after = ledger.get("t1")
    assert (after.version, after.seq, after.outcome) == (before.version, before.seq, None)
    assert queue.delete(received.receipt) is True  # untouched: the usual effects end the hop


def test_hand_on_of_a_message_received_again_elsewhere_writes_nothing(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    first = queue.receive(1, 0.05)[0]
    ledger.begin_hop("t1", 0, 30, NOW)
    time.sleep(0.1)
    second = queue.receive(1, 30)[0]
    version = ledger.get("t1").version

    assert commit.hand_on(first, "t1", 0, "hop 1", 30, NOW + 1).state is HopState.STALE
    assert ledger.get("t1").version == version
    assert queue.delete(second.receipt) is True


def test_hand_on_takes_back_in_flight_a_message_put_back_ready_that_nobody_received_since(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 0, 30, NOW)
    _, ready, _, inflight = queue.keys[:4]
    queue.client.zrem(inflight, received.message_id)  # as a receive does once the visibility timeout passed
    queue.client.lpush(ready, received.message_id)

    assert commit.hand_on(received, "t1", 0, "hop 1", 30, NOW).state is HopState.RUN
    assert queue.receive(5, 30) == []  # no longer ready: in flight again, for this runner
    assert queue.stats().in_flight == 1
    assert _body(queue, received) == "hop 1"


def test_end_hop_records_the_report_advances_and_deletes_in_one_script(pair):
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    ledger.record_outcome("t1", Outcome(Status.DONE), NOW)
    queue.send("report hop")
    received = queue.receive(1, 30)[0]
    ledger.begin_hop("t1", 6, 30, NOW)

    assert commit.end_hop(received, "t1", 6, NOW + 1, reported=True) is True
    record = ledger.get("t1")
    assert (record.seq, record.reported_at) == (6, NOW + 1)
    assert ledger.unreported(NOW + 10) == []
    assert queue.stats().in_flight == 0
    assert queue.delete(received.receipt) is False


def test_a_hop_handed_on_starts_its_own_receive_count(pair):
    """The max receive count bounds the crashes of one hop: a chain whose earlier hops were redelivered after
    crashes does not carry their count into the next hop."""
    queue, ledger = pair
    commit = open_hop_commit(queue, ledger)
    queue.send("hop 0")
    queue.receive(1, 0.05)
    time.sleep(0.1)  # its runner died; the next one gets it a second time
    received = queue.receive(1, 30)[0]
    assert received.receive_count == 2
    ledger.begin_hop("t1", 0, 30, NOW)

    assert commit.hand_on(received, "t1", 0, "hop 1", 30, NOW).state is HopState.RUN
    assert queue.client.hget(queue.keys[0] + received.message_id, "count") == "1"
