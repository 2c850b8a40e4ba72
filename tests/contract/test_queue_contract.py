"""The queue contract (``jobqueue/queue/base.py``), both planes, run against every backend in ``queues``.

Each clause gets a backend's data plane (``queue``, from ``queues.QUEUES``) and the operator plane of the same
stored queue (``admin``, from ``queues.ADMINS``), which also counts messages by state for the data-plane
clauses. Time is a fake clock handed to the backend and moved by ``clock.advance``, so delays and visibility
timeouts are tested without sleeping (backends in ``REAL_CLOCK`` sleep instead; the waits stay short).

A capability a backend's type says it lacks is asserted absent, not run; a clause a backend cannot meet for a
real limitation of its service is a strict xfail with the reason.
"""

from __future__ import annotations

import time

import pytest

from jobqueue.queue.base import (
    Peekable,
    Queue,
    QueueAdmin,
    QueueStats,
    Releasable,
    StatsSource,
    exceeded_reason,
)

from .queues import ADMINS, NEEDS_REDIS, NOT_PEEKABLE, NOT_RELEASABLE, QUEUES, REAL_CLOCK

VISIBILITY_S = 2
DELAY_S = 3
MARGIN_S = 1  # past a deadline by this much, so a backend with whole-second times agrees it has passed


class SuiteClock:
    """Unix seconds that move only when ``advance`` is called (or real time, for a REAL_CLOCK backend)."""

    def __init__(self, real: bool) -> None:
        self.real = real
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return time.time() if self.real else self.now

    def advance(self, seconds: float) -> None:
        if self.real:
            time.sleep(seconds)
        else:
            self.now += seconds


# -- clauses a backend cannot meet: limitations of its service -------------------------------------
CMQ_LISTING_RECEIVES = (
    "CMQ can look at a dead letter only by receiving it, which hides it for the DLQ's VisibilityTimeout and "
    "raises its dequeueCount (also when an operator merely inspects the dead-letter queue), so a look right "
    "after another one misses what the first look hid"
)
CMQ_LOOKUP_AFTER_LISTING = (
    CMQ_LISTING_RECEIVES + "; dead_letter_by_id waits for the hidden message in real seconds, but the "
    "local server hides it on the suite's fake clock, which this test does not advance"
)
CMQ_REDRIVE_NEW_ID = (
    "CMQ cannot move a message from the DLQ back to its queue (the data plane only sends, receives and "
    "deletes; the control plane has no receive or delete): redrive sends the body again and the server "
    "assigns it a new msgId"
)


def _backend_params(names=None, cannot_meet: dict[str, str] | None = None):
    params = []
    for name in QUEUES if names is None else names:
        marks = [pytest.mark.redis] if name in NEEDS_REDIS else []
        if cannot_meet and name in cannot_meet:
            marks.append(pytest.mark.xfail(strict=True, reason=cannot_meet[name]))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def cannot_meet(**reasons: str):
    """Run the test on every backend, expecting those named (backend=reason) to fail it; a pass is an error."""
    return pytest.mark.parametrize("backend", _backend_params(cannot_meet=reasons), indirect=True)


def only(names):
    """Run the test on the backends named (those whose type declares the capability it needs)."""
    return pytest.mark.parametrize("backend", _backend_params(sorted(names)), indirect=True)


@pytest.fixture(params=_backend_params())
def backend(request):
    return request.param


@pytest.fixture
def clock(backend):
    return SuiteClock(real=backend in REAL_CLOCK)


def _opening(request, backend, tmp_path, clock, factories):
    """Opens the backend's stored queue through ``factories`` (again on every call); all closed after the test."""
    redis_url = request.getfixturevalue("redis_url") if backend in NEEDS_REDIS else None
    opened = []

    def make(max_receive_count=5):
        opened.append(factories[backend](tmp_path, redis_url, max_receive_count, clock))
        return opened[-1]

    def close_all():
        for plane in opened:
            plane.close()

    request.addfinalizer(close_all)
    return make


@pytest.fixture
def make_queue(request, backend, tmp_path, clock):
    """Opens the backend's data plane."""
    return _opening(request, backend, tmp_path, clock, QUEUES)


@pytest.fixture
def queue(make_queue):
    return make_queue()


@pytest.fixture
def make_admin(request, backend, tmp_path, clock):
    """Opens the backend's operator plane of the queue ``make_queue`` opens."""
    return _opening(request, backend, tmp_path, clock, ADMINS)


@pytest.fixture
def admin(queue, make_admin):
    """Opened after ``queue`` (a CMQ admin must not create the work queue with other attributes)."""
    return make_admin(queue.max_receive_count)


def counts(admin: QueueAdmin) -> QueueStats:
    source = admin.stats_source()
    assert source is not None, f"{admin!r} has no statistics"
    return source.stats()


def _receive_one(queue):
    received = queue.receive(1, VISIBILITY_S)
    assert len(received) == 1, received
    return received[0]


def _dead(queue, body, reason="bad"):
    queue.send(body)
    received = _receive_one(queue)
    assert queue.dead_letter(received, reason)
    return received.message_id


# -- capabilities --------------------------------------------------------------------------------
def test_each_plane_declares_its_capabilities_by_type(queue, admin, backend):
    assert isinstance(queue, Queue) and isinstance(admin, QueueAdmin)
    assert isinstance(queue, Releasable) is (backend not in NOT_RELEASABLE)
    assert isinstance(admin.stats_source(), StatsSource)  # every admin of the suite has statistics
    if backend in NOT_RELEASABLE:
        assert not hasattr(queue, "release"), "a data plane that cannot release must not offer it"
    assert isinstance(admin, Peekable) is (backend not in NOT_PEEKABLE)


# -- send, receive, delete -------------------------------------------------------------------
def test_sent_message_is_received_once_and_deleted(queue, admin, clock):
    body = '{"hello": "世界"}'
    message_id = queue.send(body)

    received = _receive_one(queue)

    assert (received.message_id, received.body, received.receive_count) == (message_id, body, 1)
    assert abs(received.enqueued_at - clock()) < 5
    assert queue.receive(1, VISIBILITY_S) == []
    assert queue.delete(received.receipt) is True
    assert queue.delete(received.receipt) is False
    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=0, dead=0)


def test_send_batch_beyond_max_batch_keeps_order_and_delivers_all(queue):
    bodies = [f"body-{n}" for n in range(queue.max_batch * 2 + 3)]

    ids = queue.send_batch(bodies)

    assert len(ids) == len(set(ids)) == len(bodies)
    delivered = {}
    for _ in range(10):
        batch = queue.receive(queue.max_batch, VISIBILITY_S)
        if not batch:
            break
        delivered.update({r.message_id: r.body for r in batch})
    assert delivered == dict(zip(ids, bodies, strict=True))


def test_receive_is_capped_at_max_batch(queue):
    queue.send_batch([f"b{n}" for n in range(queue.max_batch + 4)])

    assert len(queue.receive(queue.max_batch + 10, VISIBILITY_S)) == queue.max_batch
    assert len(queue.receive(queue.max_batch + 10, VISIBILITY_S)) == 4


def test_receive_waits_up_to_wait_s_for_nothing_and_not_at_all_for_a_ready_message(queue):
    started = time.monotonic()
    assert queue.receive(1, VISIBILITY_S, wait_s=0.3) == []
    assert 0.25 <= time.monotonic() - started < 3

    queue.send("ready")
    started = time.monotonic()
    assert [r.body for r in queue.receive(1, VISIBILITY_S, wait_s=5)] == ["ready"]
    assert time.monotonic() - started < 1


# -- delays and the clock ----------------------------------------------------------------------
def test_delayed_message_is_not_receivable_before_its_delay(queue, admin, clock):
    queue.send("later", delay_s=DELAY_S)

    assert queue.receive(1, VISIBILITY_S) == []
    assert counts(admin) == QueueStats(ready=0, delayed=1, in_flight=0, dead=0)

    clock.advance(DELAY_S + MARGIN_S)

    assert counts(admin) == QueueStats(ready=1, delayed=0, in_flight=0, dead=0)
    assert _receive_one(queue).body == "later"


@only(set(QUEUES) - REAL_CLOCK)
def test_the_injected_clock_alone_makes_the_longest_delay_pass_without_waiting(queue, clock):
    started, sent_at = time.monotonic(), clock()
    queue.send("tomorrow", delay_s=queue.max_delay_s)

    clock.advance(queue.max_delay_s - 60)
    assert queue.receive(1, VISIBILITY_S) == []
    clock.advance(60 + MARGIN_S)
    received = _receive_one(queue)

    assert received.body == "tomorrow" and abs(received.enqueued_at - sent_at) <= 1
    assert time.monotonic() - started < 3, "the delay must pass on the injected clock, not the wall clock"


@pytest.mark.parametrize("bad_delay", [-1, "max+1"])
def test_delay_outside_range_is_refused_and_nothing_is_sent(queue, admin, bad_delay):
    delay_s = queue.max_delay_s + 1 if bad_delay == "max+1" else bad_delay

    with pytest.raises(ValueError):
        queue.send("x", delay_s=delay_s)
    with pytest.raises(ValueError):
        queue.send_batch(["x", "y"], delay_s=delay_s)
    assert counts(admin).pending == 0


def test_longest_delay_is_accepted(queue, admin):
    queue.send("far", delay_s=queue.max_delay_s)

    assert counts(admin) == QueueStats(ready=0, delayed=1, in_flight=0, dead=0)


# -- visibility --------------------------------------------------------------------------------
def test_message_not_deleted_in_time_comes_back_with_a_new_receipt(queue, admin, clock):
    queue.send("work")
    first = _receive_one(queue)
    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=1, dead=0)

    clock.advance(VISIBILITY_S + MARGIN_S)
    second = _receive_one(queue)

    assert (second.message_id, second.body, second.receive_count) == (first.message_id, "work", 2)
    assert second.receipt != first.receipt
    assert queue.delete(first.receipt) is False, "a stale receipt must not delete the redelivered copy"
    assert counts(admin).in_flight == 1
    assert queue.delete(second.receipt) is True
    assert counts(admin).pending == 0


def test_message_received_too_often_becomes_a_dead_letter(make_queue, make_admin, clock):
    queue = make_queue(max_receive_count=2)
    admin = make_admin(max_receive_count=2)
    message_id = queue.send("crashes the worker")
    for expected_count in (1, 2):
        assert _receive_one(queue).receive_count == expected_count
        clock.advance(VISIBILITY_S + MARGIN_S)

    assert queue.receive(1, VISIBILITY_S) == []

    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=0, dead=1)
    (dead,) = admin.dead_letters()
    assert (dead.message_id, dead.body, dead.receive_count) == (message_id, "crashes the worker", 2)
    assert dead.reason == exceeded_reason(2, 2)


@only(set(QUEUES) - NOT_RELEASABLE)
def test_released_message_is_receivable_at_once_and_that_receive_does_not_count(queue, clock):
    assert isinstance(queue, Releasable)
    queue.send("kept for later")
    first = _receive_one(queue)
    assert queue.release(first.receipt) is True
    again = _receive_one(queue)  # no clock advance: it did not wait out its visibility timeout
    assert (again.message_id, again.receive_count) == (first.message_id, 1)
    assert queue.release(first.receipt) is False  # stale receipt
    assert queue.delete(again.receipt) is True


# -- dead letters ------------------------------------------------------------------------------
@cannot_meet(cmq=CMQ_LOOKUP_AFTER_LISTING)
def test_dead_letter_moves_the_message_with_its_reason(queue, admin, clock):
    queue.send("poison")
    received = _receive_one(queue)

    assert queue.dead_letter(received, "body is not JSON") is True

    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=0, dead=1)
    (dead,) = admin.dead_letters()
    assert (dead.message_id, dead.body, dead.reason, dead.receive_count) == (
        received.message_id,
        "poison",
        "body is not JSON",
        1,
    )
    assert abs(dead.dead_at - clock()) < 5
    assert admin.dead_letter_by_id(received.message_id) == dead
    assert queue.dead_letter(received, "again") is False
    assert queue.delete(received.receipt) is False


def test_dead_letter_needs_a_reason(queue, admin):
    queue.send("x")
    received = _receive_one(queue)

    with pytest.raises(ValueError):
        queue.dead_letter(received, "")
    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=1, dead=0)


def test_dead_letter_with_a_stale_receipt_does_nothing(queue, admin, clock):
    queue.send("work")
    first = _receive_one(queue)
    clock.advance(VISIBILITY_S + MARGIN_S)
    second = _receive_one(queue)

    assert queue.dead_letter(first, "late") is False

    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=1, dead=0)
    assert queue.delete(second.receipt) is True


@cannot_meet(cmq=CMQ_LISTING_RECEIVES)
def test_listing_dead_letters_changes_nothing(queue, admin, clock):
    first = _dead(queue, "a")
    clock.advance(1)
    second = _dead(queue, "b")

    listed = admin.dead_letters()

    assert [d.message_id for d in listed] == [first, second]
    assert admin.dead_letters() == listed
    assert admin.dead_letters(limit=1) == listed[:1]
    assert queue.receive(1, VISIBILITY_S) == []
    assert counts(admin) == QueueStats(ready=0, delayed=0, in_flight=0, dead=2)


def test_listing_arguments_are_checked(queue, admin):
    _dead(queue, "a")

    assert admin.dead_letters(limit=0) == []
    with pytest.raises(ValueError):
        admin.dead_letters(limit=-1)
    with pytest.raises(ValueError):
        admin.redrive(limit=-1)
    with pytest.raises(ValueError):
        admin.redrive(["some-id"], limit=1)
    assert admin.redrive([]) == [] and admin.redrive(limit=0) == []
    assert counts(admin).dead == 1


@cannot_meet(cmq=CMQ_REDRIVE_NEW_ID)
def test_redrive_by_id_sends_back_only_those_ready_with_count_reset(queue, admin, clock):
    first = _dead(queue, "a")
    second = _dead(queue, "b")

    assert admin.redrive([first, "no-such-id", first]) == [first]

    assert counts(admin) == QueueStats(ready=1, delayed=0, in_flight=0, dead=1)
    received = _receive_one(queue)
    assert (received.message_id, received.body, received.receive_count) == (first, "a", 1)
    assert [d.message_id for d in admin.dead_letters()] == [second]


def test_redrive_all_goes_oldest_first_up_to_the_limit(queue, admin, clock):
    ids = []
    for body in ("a", "b", "c"):
        ids.append(_dead(queue, body))
        clock.advance(1)

    assert admin.redrive(limit=2) == ids[:2]
    assert admin.redrive() == ids[2:]
    assert admin.redrive() == []
    assert counts(admin) == QueueStats(ready=3, delayed=0, in_flight=0, dead=0)


@cannot_meet(cmq=CMQ_REDRIVE_NEW_ID)
def test_redriven_message_gets_a_full_set_of_receives_again(make_queue, make_admin, clock):
    queue = make_queue(max_receive_count=1)
    admin = make_admin(max_receive_count=1)
    message_id = queue.send("flaky")
    _receive_one(queue)
    clock.advance(VISIBILITY_S + MARGIN_S)
    assert queue.receive(1, VISIBILITY_S) == []  # the second receive dead-letters it

    assert admin.redrive() == [message_id]

    received = _receive_one(queue)
    assert (received.message_id, received.receive_count) == (message_id, 1)


@cannot_meet(cmq=CMQ_LISTING_RECEIVES)
def test_remove_dead_drops_one_dead_letter(queue, admin):
    gone = _dead(queue, "a")
    kept = _dead(queue, "b")

    assert admin.remove_dead(gone) is True
    assert admin.remove_dead(gone) is False

    assert admin.dead_letter_by_id(gone) is None
    assert [d.message_id for d in admin.dead_letters()] == [kept]
    assert admin.redrive([gone]) == []


# -- stats and persistence ---------------------------------------------------------------------
def test_stats_count_every_state(queue, admin):
    queue.send_batch(["r1", "r2", "r3"])
    queue.send("later", delay_s=DELAY_S)
    taken = queue.receive(2, VISIBILITY_S)
    assert queue.dead_letter(taken[1], "bad")

    stats = counts(admin)

    assert stats == QueueStats(ready=1, delayed=1, in_flight=1, dead=1)
    assert stats.pending == 3


def test_stats_tell_the_oldest_waiting_message_where_the_backend_can(queue, admin, clock, backend):
    assert counts(admin).oldest_enqueued_at is None
    sent_at = clock()
    queue.send("first")
    clock.advance(5)
    queue.send("second")
    oldest = counts(admin).oldest_enqueued_at
    if backend in NOT_PEEKABLE:
        assert oldest is None  # CMQ's control plane does not tell
    else:
        assert oldest == pytest.approx(sent_at, abs=0.01)


# -- peek: a look that changes nothing -----------------------------------------------------------
PEEKABLE = sorted(set(QUEUES) - NOT_PEEKABLE)


@only(PEEKABLE)
def test_peek_shows_the_next_messages_in_receive_order_and_changes_nothing(queue, admin, clock):
    first, second = queue.send("first"), queue.send("second")
    later = queue.send("later", delay_s=60)  # still delayed after the visibility timeout below
    expired = queue.send("expired")
    queue.receive(3, VISIBILITY_S)  # first, second, expired in flight
    clock.advance(VISIBILITY_S + MARGIN_S)  # ... and ready again, received once
    before = counts(admin)

    peeked = admin.peek(10)

    assert {p.message_id for p in peeked} == {first, second, expired, later}
    assert peeked[-1].message_id == later and peeked[-1].state == "delayed"
    assert all(p.state == "ready" and p.receive_count == 1 for p in peeked[:-1])
    assert peeked[-1].receive_count == 0 and peeked[-1].body == "later"
    assert counts(admin) == before
    assert [p.message_id for p in admin.peek(2)] == [p.message_id for p in peeked[:2]]
    got = queue.receive(1, VISIBILITY_S)[0]
    assert (got.message_id, got.receive_count) == (peeked[0].message_id, 2)


@only(PEEKABLE)
def test_peek_of_a_fresh_message_leaves_its_receive_count_at_zero(queue, admin):
    sent = queue.send("body")
    (p,) = admin.peek(5)
    assert (p.message_id, p.body, p.state, p.receive_count) == (sent, "body", "ready", 0)
    got = _receive_one(queue)
    assert (got.message_id, got.receive_count) == (sent, 1)
    with pytest.raises(ValueError):
        admin.peek(0)


def test_messages_survive_closing_and_reopening_the_queue(make_queue, make_admin, clock):
    queue = make_queue()
    held_id = queue.send("held")
    _receive_one(queue)  # then the worker "dies": nobody deletes it
    queue.send("later", delay_s=DELAY_S)
    dead_id = _dead(queue, "dead")
    queue.close()

    reopened, admin = make_queue(), make_admin()

    assert counts(admin) == QueueStats(ready=0, delayed=1, in_flight=1, dead=1)
    assert admin.dead_letter_by_id(dead_id).body == "dead"
    clock.advance(max(VISIBILITY_S, DELAY_S) + MARGIN_S)
    got = {r.body: r for r in reopened.receive(5, VISIBILITY_S)}
    assert sorted(got) == ["held", "later"]
    assert (got["held"].message_id, got["held"].receive_count) == (held_id, 2)
