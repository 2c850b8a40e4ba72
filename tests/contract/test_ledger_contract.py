"""The Ledger contract (``jobqueue/ledger/base.py``), run against every backend in ``ledgers.LEDGERS``.

Times are explicit: every call passes ``now``, so leases and deadlines are tested without sleeping.
What only one backend has is checked in ``test_ledger_backends.py``; the primitives' compare-and-set and
concurrent writers in ``tests/unit/test_ledger_concurrency.py``.
"""

from __future__ import annotations

import time

import pytest

from jobqueue.ledger.base import Claim, ClaimState, Hop, HopState, SubmitState, TaskRecord
from relay_core.domain import Outcome, Status

from .ledgers import LEDGERS, NEEDS_REDIS

NOW = 1_700_000_000.0
LEASE_S = 30.0
DEADLINE = NOW + 3600
DONE = Outcome(Status.DONE, result_keys=("output/u1/t1/frame_01.jpg",), vendor_task_id="v-1", detail="first")
FAILED = Outcome(Status.FAILED, error_reason="生成超时", detail="second")


def _backend_params():
    return [pytest.param(name, marks=pytest.mark.redis) if name in NEEDS_REDIS else name for name in LEDGERS]


@pytest.fixture(params=_backend_params())
def make_ledger(request, tmp_path):
    """Opens the backend under test; every call opens the same stored state again."""
    redis_url = request.getfixturevalue("redis_url") if request.param in NEEDS_REDIS else None
    opened = []

    def make():
        opened.append(LEDGERS[request.param](tmp_path, redis_url))
        return opened[-1]

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger):
    return make_ledger()


def _claim(ledger, token, now=NOW, task="t1", deadline_at=DEADLINE):
    return ledger.claim_submit(task, token, LEASE_S, deadline_at, now)


def _seq(ledger, task="t1"):
    """The handled seq, ``-1`` for an unknown task."""
    record = ledger.get(task)
    return record.seq if record is not None else -1


def _ids(records):
    return [record.task_id for record in records]


# -- submit claim ------------------------------------------------------------------------------
def test_first_claim_is_acquired_and_leased(ledger):
    assert _claim(ledger, "a") == Claim(ClaimState.ACQUIRED)
    record = ledger.get("t1")
    assert (record.submit_state, record.token, record.lease_until, record.deadline_at) == (
        SubmitState.LEASED,
        "a",
        NOW + LEASE_S,
        DEADLINE,
    )
    assert record.submit_state == "leased"  # a str enum: compares (and serialises) as its value


def test_live_claim_of_another_token_is_held_for_the_remaining_lease(ledger):
    _claim(ledger, "a")
    claim = _claim(ledger, "b", now=NOW + 10)
    assert claim.state is ClaimState.HELD
    assert claim.retry_after_s == pytest.approx(LEASE_S - 10)


def test_the_holder_claiming_again_renews_its_lease(ledger):
    _claim(ledger, "a")
    assert _claim(ledger, "a", now=NOW + 20).state is ClaimState.ACQUIRED
    assert _claim(ledger, "b", now=NOW + 40).retry_after_s == pytest.approx(LEASE_S - 20)


def test_an_expired_lease_lets_another_token_take_over_the_dead_claim(ledger):
    _claim(ledger, "a")
    assert _claim(ledger, "b", now=NOW + LEASE_S + 1).state is ClaimState.ACQUIRED
    assert not ledger.record_submission("t1", "a", "v-late", NOW + LEASE_S + 2)
    assert ledger.record_submission("t1", "b", "v-b", NOW + LEASE_S + 3)
    assert ledger.get("t1").vendor_task_id == "v-b"


def test_a_recorded_submission_answers_every_later_claim(ledger):
    _claim(ledger, "a")
    assert ledger.record_submission("t1", "a", "v-1", NOW + 1)
    for token, now in (("a", NOW + 2), ("b", NOW + 5), ("c", NOW + 10 * LEASE_S)):
        assert _claim(ledger, token, now=now) == Claim(ClaimState.SUBMITTED, vendor_task_id="v-1")
    assert ledger.get("t1").submit_state == "submitted"


def test_an_ambiguous_submit_blocks_every_claim_until_an_operator_resets_it(ledger):
    _claim(ledger, "a")
    assert ledger.mark_ambiguous("t1", "a", NOW + 1)
    assert _claim(ledger, "b", now=NOW + 2).state is ClaimState.AMBIGUOUS
    assert _claim(ledger, "a", now=NOW + 100 * LEASE_S).state is ClaimState.AMBIGUOUS
    assert ledger.reset_submit("t1", NOW + 200 * LEASE_S)
    assert _claim(ledger, "c", now=NOW + 200 * LEASE_S).state is ClaimState.ACQUIRED


def test_a_holder_that_dies_while_sending_leaves_the_task_ambiguous_not_resubmittable(ledger):
    _claim(ledger, "a")
    assert not ledger.mark_sending("t1", "b", NOW + 1)  # not the holder
    assert ledger.mark_sending("t1", "a", NOW + 1)
    assert ledger.get("t1").submit_state == "sending"
    held = _claim(ledger, "b", now=NOW + 10)
    assert held.state is ClaimState.HELD and held.retry_after_s == pytest.approx(LEASE_S - 10)
    assert _claim(ledger, "b", now=NOW + LEASE_S + 1).state is ClaimState.AMBIGUOUS  # died mid-submit
    assert _claim(ledger, "c", now=NOW + LEASE_S + 2).state is ClaimState.AMBIGUOUS
    assert not ledger.record_submission("t1", "a", "v-late", NOW + LEASE_S + 3)
    assert ledger.reset_submit("t1", NOW + LEASE_S + 4)
    assert _claim(ledger, "d", now=NOW + LEASE_S + 5).state is ClaimState.ACQUIRED


def test_a_sending_holder_settles_its_claim(ledger):
    _claim(ledger, "a")
    assert ledger.mark_sending("t1", "a", NOW + 1)
    assert not ledger.mark_sending("t1", "a", NOW + 2)  # only from leased
    assert ledger.record_submission("t1", "a", "v-1", NOW + 2)
    assert _claim(ledger, "b", now=NOW + 3) == Claim(ClaimState.SUBMITTED, vendor_task_id="v-1")
    _claim(ledger, "a", task="t2")
    assert ledger.mark_sending("t2", "a", NOW + 1) and ledger.release_submit("t2", "a", NOW + 2)
    assert _claim(ledger, "b", task="t2", now=NOW + 3).state is ClaimState.ACQUIRED


def test_only_the_current_token_records_marks_or_releases(ledger):
    _claim(ledger, "a")
    assert not ledger.record_submission("t1", "b", "v-x", NOW + 1)
    assert not ledger.mark_ambiguous("t1", "b", NOW + 1)
    assert not ledger.release_submit("t1", "b", NOW + 1)
    assert ledger.get("t1").submit_state == "leased"
    assert not ledger.record_submission("unknown", "a", "v-x", NOW + 1)
    assert not ledger.mark_ambiguous("unknown", "a", NOW + 1)
    assert not ledger.release_submit("unknown", "a", NOW + 1)


def test_release_lets_a_retry_claim_at_once(ledger):
    _claim(ledger, "a")
    assert ledger.release_submit("t1", "a", NOW + 1)
    assert not ledger.release_submit("t1", "a", NOW + 2)
    assert ledger.get("t1").submit_state == ""
    assert _claim(ledger, "b", now=NOW + 2).state is ClaimState.ACQUIRED
    assert not ledger.record_submission("t1", "a", "v-a", NOW + 3)


def test_a_settled_claim_cannot_be_settled_again(ledger):
    _claim(ledger, "a")
    assert ledger.record_submission("t1", "a", "v-1", NOW + 1)
    assert not ledger.mark_ambiguous("t1", "a", NOW + 2)
    assert not ledger.release_submit("t1", "a", NOW + 2)
    assert not ledger.record_submission("t1", "a", "v-2", NOW + 2)
    assert ledger.get("t1").vendor_task_id == "v-1"


def test_reset_submit_clears_a_live_or_ambiguous_claim_but_keeps_a_submission(ledger):
    assert not ledger.reset_submit("unknown", NOW)
    _claim(ledger, "a")
    assert ledger.reset_submit("t1", NOW + 1)
    assert not ledger.reset_submit("t1", NOW + 1)  # nothing left to forget
    assert not ledger.record_submission("t1", "a", "v-a", NOW + 2)
    assert _claim(ledger, "b", now=NOW + 2).state is ClaimState.ACQUIRED
    assert ledger.record_submission("t1", "b", "v-b", NOW + 3)
    assert not ledger.reset_submit("t1", NOW + 4)
    assert _claim(ledger, "c", now=NOW + 5) == Claim(ClaimState.SUBMITTED, vendor_task_id="v-b")


def test_the_first_known_deadline_is_kept(ledger):
    ledger.advance("t1", 0, NOW)  # a record without a deadline
    _claim(ledger, "a", deadline_at=DEADLINE)
    _claim(ledger, "b", now=NOW + 1, deadline_at=DEADLINE + 99)
    assert ledger.get("t1").deadline_at == DEADLINE


# -- hop order ------------------------------------------------------------------------------------
def test_a_task_starts_with_no_seq_handled(ledger):
    assert ledger.get("unknown") is None
    assert not ledger.advance("t1", -1, NOW)  # nothing to raise: no record is written either
    assert ledger.get("t1") is None
    ledger.begin_hop("t1", 0, 30, NOW)
    assert ledger.get("t1").seq == -1


def test_advance_is_a_compare_and_set_that_never_lowers(ledger):
    assert ledger.advance("t1", 0, NOW)
    assert _seq(ledger) == 0
    assert ledger.advance("t1", 5, NOW + 1)
    assert not ledger.advance("t1", 5, NOW + 2)
    assert not ledger.advance("t1", 3, NOW + 3)
    assert _seq(ledger) == 5


# -- terminal outcome --------------------------------------------------------------------------------
def test_begin_hop_admits_one_runner_per_hop_and_lets_a_dead_runner_be_replaced(ledger):
    assert ledger.begin_hop("t1", 0, 30, NOW) == Hop(HopState.RUN)
    busy = ledger.begin_hop("t1", 0, 30, NOW + 10)  # a concurrent duplicate of the same hop
    assert busy.state is HopState.BUSY and busy.retry_after_s == pytest.approx(20)
    assert ledger.begin_hop("t1", 0, 30, NOW + 31) == Hop(HopState.RUN)  # the first runner died
    assert ledger.begin_hop("t1", 1, 30, NOW + 32) == Hop(HopState.RUN)  # its successor
    assert ledger.begin_hop("t1", 0, 30, NOW + 100).state is HopState.STALE  # below a hop begun
    ledger.advance("t1", 1, NOW + 33)
    assert ledger.begin_hop("t1", 1, 30, NOW + 34).state is HopState.STALE  # handled
    assert ledger.begin_hop("t1", 2, 30, NOW + 35) == Hop(HopState.RUN)
    assert ledger.begin_hop("other", 5, 30, NOW) == Hop(HopState.RUN)


def test_a_submit_hop_takes_the_claim_with_its_lease_in_one_write(ledger):
    first = ledger.begin_hop("t1", 0, 30, NOW, "u1", submit_token="a", deadline_at=NOW + 600)
    assert first.state is HopState.RUN and first.claim == Claim(ClaimState.ACQUIRED)
    stored = ledger.get("t1")
    assert (stored.version, stored.submit_state, stored.token, stored.lease_until) == (
        1,
        SubmitState.LEASED,
        "a",
        NOW + 30,
    )
    assert [r.task_id for r in ledger.open_tasks(NOW + 601)] == ["t1"]  # the deadline is indexed with it
    assert ledger.mark_sending("t1", "a", NOW + 1)
    # the runner died mid-request: the redelivered hop finds the claim ambiguous, never a second submit
    again = ledger.begin_hop("t1", 0, 30, NOW + 31, "u1", submit_token="b", deadline_at=NOW + 600)
    assert again.state is HopState.RUN and again.claim == Claim(ClaimState.AMBIGUOUS)
    assert ledger.begin_hop("t1", 0, 30, NOW + 32, "u1", submit_token="c").state is HopState.BUSY


def test_release_hop_lets_a_redriven_message_run_at_once(ledger):
    assert ledger.begin_hop("t1", 3, 60, NOW) == Hop(HopState.RUN)
    ledger.release_hop("t1", 2, NOW + 1)  # another hop: no effect
    assert ledger.begin_hop("t1", 3, 60, NOW + 2).state is HopState.BUSY
    ledger.release_hop("t1", 3, NOW + 3)
    assert ledger.begin_hop("t1", 3, 60, NOW + 4) == Hop(HopState.RUN)
    assert _seq(ledger) == -1  # releasing is not handling


def test_the_first_outcome_wins_and_every_caller_gets_it_back(ledger):
    assert ledger.record_outcome("t1", DONE, NOW) == DONE
    again = ledger.record_outcome("t1", FAILED, NOW + 1)
    assert again == DONE
    assert again.detail == "first"
    assert ledger.record_outcome("t1", DONE, NOW + 2) == DONE
    assert ledger.get("t1").outcome == DONE


def test_finish_in_hop_records_the_outcome_only_while_the_hop_is_leased_and_not_handled(ledger):
    assert ledger.finish_in_hop("t1", 1, DONE, NOW).state is HopState.STALE  # no record: no hop of it began
    assert ledger.begin_hop("t1", 1, 30, NOW) == Hop(HopState.RUN)
    lapsed = ledger.finish_in_hop("t1", 1, DONE, NOW + 31)  # its lease lapsed: another runner may hold it
    assert lapsed.state is HopState.BUSY and ledger.get("t1").outcome is None
    assert ledger.begin_hop("t1", 1, 30, NOW + 32) == Hop(HopState.RUN)
    kept = ledger.finish_in_hop("t1", 1, DONE, NOW + 33, user_id="u1", report_message="r", vendor_done="v9")
    stored = ledger.get("t1")
    assert kept.state is HopState.RUN and kept.record == stored and stored.outcome == DONE
    assert (stored.seq, stored.hop_seq, stored.hop_until) == (-1, 1, NOW + 62)  # the hop and its lease are kept
    assert stored.report_message == "r" and stored.user_id == "u1"
    assert [r.task_id for r in ledger.unreported(NOW + 34)] == ["t1"]
    again = ledger.finish_in_hop("t1", 1, FAILED, NOW + 34)  # a rerun of the hop: the first outcome is the one
    assert again.state is HopState.RUN and again.record.outcome == DONE
    ledger.advance("t1", 1, NOW + 35)
    assert ledger.finish_in_hop("t1", 1, FAILED, NOW + 36).state is HopState.STALE  # handled
    assert ledger.get("t1").outcome == DONE


def test_mark_reported_records_the_first_acknowledgement(ledger):
    ledger.record_outcome("t1", FAILED, NOW)
    assert ledger.get("t1").reported_at is None
    ledger.mark_reported("t1", NOW + 1)
    ledger.mark_reported("t1", NOW + 2)
    assert ledger.get("t1").reported_at == NOW + 1


# -- reading --------------------------------------------------------------------------------------------
def test_get_returns_the_full_record(ledger):
    assert ledger.get("unknown") is None
    ledger.claim_submit("t1", "a", LEASE_S, DEADLINE, NOW, user_id="u1")
    ledger.record_submission("t1", "a", "v-1", NOW + 1)
    ledger.advance("t1", 2, NOW + 2)
    ledger.record_outcome("t1", DONE, NOW + 3)
    ledger.mark_reported("t1", NOW + 4)
    expected = TaskRecord(
        task_id="t1",
        version=5,  # one per write: claim, submission, advance, outcome, report
        submit_state=SubmitState.SUBMITTED,
        token="a",
        lease_until=0.0,
        vendor_task_id="v-1",
        deadline_at=DEADLINE,
        seq=2,
        outcome=DONE,
        outcome_at=NOW + 3,
        reported_at=NOW + 4,
        user_id="u1",
        submitted_at=NOW + 1,
        created_at=NOW,
        updated_at=NOW + 4,
    )
    assert ledger.get("t1") == expected
    assert ledger.get("t1").outcome.detail == "first"  # detail is not compared: check it is kept


def test_the_first_known_user_is_kept(ledger):
    ledger.begin_hop("t1", 0, 30, NOW)
    assert ledger.get("t1").user_id is None
    ledger.claim_submit("t1", "a", LEASE_S, DEADLINE, NOW, user_id="u1")
    ledger.claim_submit("t1", "b", LEASE_S, DEADLINE, NOW + 1, user_id="u2")
    ledger.record_outcome("t1", DONE, NOW + 2, user_id="u3")
    assert ledger.get("t1").user_id == "u1"
    assert ledger.record_outcome("t2", DONE, NOW, user_id="u9") == DONE
    assert ledger.get("t2").user_id == "u9"


def test_open_tasks_lists_tasks_without_outcome_before_the_bound_oldest_first(ledger):
    for task, deadline in (("late", NOW + 400), ("a", NOW + 300), ("b", NOW + 100), ("c", NOW + 200)):
        _claim(ledger, "tok", task=task, deadline_at=deadline)
    _claim(ledger, "tok", task="finished", deadline_at=NOW + 50)
    ledger.record_outcome("finished", DONE, NOW + 1)
    ledger.record_outcome("c", FAILED, NOW + 1)
    ledger.advance("no-deadline", 0, NOW)

    tasks = ledger.open_tasks(NOW + 350)
    assert [t.task_id for t in tasks] == ["b", "a"]
    assert tasks[0] == ledger.get("b")
    assert [t.task_id for t in ledger.open_tasks(NOW + 350, limit=1)] == ["b"]
    assert ledger.open_tasks(NOW + 100) == []  # the bound is exclusive
    assert [t.task_id for t in ledger.open_tasks(NOW + 10_000)] == ["b", "a", "late"]


def test_open_tasks_orders_equal_deadlines_by_task_id_and_pages_with_limit(ledger):
    for task in ("t3", "t1", "t2"):
        _claim(ledger, "tok", task=task, deadline_at=NOW + 10)
    assert [t.task_id for t in ledger.open_tasks(NOW + 11, limit=2)] == ["t1", "t2"]


def test_state_survives_closing_and_reopening(make_ledger):
    first = make_ledger()
    _claim(first, "a")
    first.record_submission("t1", "a", "v-1", NOW + 1)
    _claim(first, "a", task="t2")
    first.advance("t1", 7, NOW + 2)
    first.record_outcome("t3", FAILED, NOW + 3)
    record = first.get("t1")
    first.close()

    second = make_ledger()
    assert second.get("t1") == record
    assert _claim(second, "b", now=NOW + 5).vendor_task_id == "v-1"
    assert _claim(second, "b", now=NOW + 5, task="t2").state is ClaimState.HELD
    assert _seq(second) == 7
    assert second.record_outcome("t3", DONE, NOW + 6) == FAILED
    assert [t.task_id for t in second.open_tasks(DEADLINE + 1)] == ["t1", "t2"]


def test_unreported_lists_recorded_outcomes_not_yet_reported_oldest_first(ledger):
    ledger.record_outcome("b", DONE, NOW + 20)
    ledger.record_outcome("a", FAILED, NOW + 10)
    ledger.record_outcome("c", DONE, NOW + 30)
    ledger.record_outcome("d", DONE, NOW + 30)
    ledger.record_outcome("reported", DONE, NOW + 5)
    ledger.mark_reported("reported", NOW + 6)
    _claim(ledger, "tok", task="open", deadline_at=NOW + 1)  # no outcome yet

    assert _ids(ledger.unreported(NOW + 31)) == ["a", "b", "c", "d"]
    assert ledger.unreported(NOW + 31)[0] == ledger.get("a")
    assert _ids(ledger.unreported(NOW + 20)) == ["a"]  # the bound is exclusive
    assert _ids(ledger.unreported(NOW + 31, limit=3)) == ["a", "b", "c"]  # equal times by task id
    assert ledger.unreported(NOW + 31, limit=0) == []
    assert ledger.record_outcome("a", DONE, NOW + 40) == FAILED  # a repeat moves nothing
    assert _ids(ledger.unreported(NOW + 31)) == ["a", "b", "c", "d"]


def test_a_report_leaves_the_pending_report_index(ledger):
    _claim(ledger, "tok", task="t1")
    ledger.record_outcome("t1", DONE, NOW + 1)
    assert _ids(ledger.open_tasks(DEADLINE + 1)) == []  # an outcome leaves the open index ...
    assert _ids(ledger.unreported(NOW + 2)) == ["t1"]  # ... for the pending-report one
    ledger.advance("t1", 3, NOW + 2)  # later writes keep it there
    ledger.release_hop("t1", 3, NOW + 2)
    assert _ids(ledger.unreported(NOW + 2)) == ["t1"]
    ledger.mark_reported("t1", NOW + 3)
    assert ledger.unreported(NOW + 100) == []
    ledger.mark_reported("t1", NOW + 4)
    assert ledger.unreported(NOW + 100) == [] and ledger.get("t1").reported_at == NOW + 3


def test_prune_keeps_records_younger_than_retention(ledger):
    ledger.record_outcome("t1", DONE, NOW)
    _claim(ledger, "a", task="t2")
    assert ledger.prune(NOW + 60) == 0
    assert ledger.get("t1").outcome == DONE and ledger.get("t2") is not None
    assert _ids(ledger.open_tasks(DEADLINE + 1)) == ["t2"] and _ids(ledger.unreported(NOW + 1)) == ["t1"]


# -- vendor jobs, webhooks, runtime estimates ---------------------------------------------------------


def _submitted(ledger, task="t1", vendor="v-1", now=NOW, poll_message='{"poll": 1}'):
    assert _claim(ledger, "a", now=now, task=task).state is ClaimState.ACQUIRED
    assert ledger.record_submission(task, "a", vendor, now + 1, poll_message=poll_message)


def test_a_recorded_vendor_task_id_finds_its_task_through_the_index(ledger):
    assert ledger.by_vendor_task("v-1") is None
    _submitted(ledger)
    _submitted(ledger, task="t2", vendor="v-2")
    found = ledger.by_vendor_task("v-1")
    assert found is not None and found.task_id == "t1" and found.submitted_at == NOW + 1
    assert found.poll_message == '{"poll": 1}'
    assert ledger.by_vendor_task("v-2").task_id == "t2"
    assert ledger.by_vendor_task("v-3") is None and ledger.by_vendor_task("") is None


def test_mark_vendor_done_keeps_the_first_sighting_and_says_how_long_it_took(ledger):
    assert ledger.mark_vendor_done("t1", "v-1", NOW).took_s is None  # unknown task
    _submitted(ledger)
    first = ledger.mark_vendor_done("t1", "v-1", NOW + 6)
    assert (first.took_s, first.use, first.cancel) == (pytest.approx(5.0), "v-1", ())
    assert ledger.mark_vendor_done("t1", "v-1", NOW + 9).took_s is None
    assert ledger.get("t1").vendor_done_at == NOW + 6


def test_a_webhook_for_the_recorded_vendor_job_asks_for_one_hint_per_seq(ledger):
    from jobqueue.ledger.base import WebhookState

    assert ledger.note_webhook("t1", "v-1", NOW).state is WebhookState.UNKNOWN
    _submitted(ledger)
    assert ledger.advance("t1", 0, NOW + 1)  # the submit hop (seq 0) sent POLL seq 1
    first = ledger.note_webhook("t1", "v-1", NOW + 2)
    assert (first.state, first.seq, first.poll_message) == (WebhookState.HINT, 1, '{"poll": 1}')
    assert ledger.note_webhook("t1", "v-1", NOW + 3).state is WebhookState.DUPLICATE
    assert ledger.begin_hop("t1", 1, LEASE_S, NOW + 4).state is HopState.RUN  # a hop begun: the next seq is 2
    assert ledger.note_webhook("t1", "v-1", NOW + 5).seq == 2
    ledger.mark_vendor_done("t1", "v-1", NOW + 6)
    assert ledger.note_webhook("t1", "v-1", NOW + 7).state is WebhookState.FINISHED
    assert ledger.get("t1").webhook_at == NOW + 5


def test_a_webhook_naming_another_vendor_job_asks_about_it_while_the_recorded_one_runs(ledger):
    from jobqueue.ledger.base import WebhookState

    assert _claim(ledger, "a").state is ClaimState.ACQUIRED
    assert ledger.mark_sending("t1", "a", NOW)
    assert ledger.note_webhook("t1", "v-9", NOW + 1).state is WebhookState.NO_SUBMISSION  # its answer may come
    assert ledger.get("t1").webhook_vendor_ids == ("v-9",)
    assert ledger.record_submission("t1", "a", "v-1", NOW + 2, poll_message="{}")
    other = ledger.note_webhook("t1", "v-8", NOW + 3)
    assert (other.state, other.vendor_task_id, other.poll_message) == (WebhookState.OTHER_JOB, "v-8", "{}")
    assert ledger.note_webhook("t1", "v-8", NOW + 4).state is WebhookState.DUPLICATE
    assert ledger.get("t1").webhook_vendor_ids == ("v-9", "v-8")
    ledger.release_hop("t1", 0, NOW + 5, parked=True)
    assert ledger.note_webhook("t1", "v-1", NOW + 6).state is WebhookState.PARKED


def _ambiguous(ledger, now=NOW):
    assert _claim(ledger, "a", now=now).state is ClaimState.ACQUIRED
    assert ledger.mark_sending("t1", "a", now, poll_message='{"poll": 1}')
    assert ledger.mark_ambiguous("t1", "a", now + 1)


def test_a_webhook_that_beats_the_create_answer_is_not_kept_as_another_job(ledger):
    assert _claim(ledger, "a").state is ClaimState.ACQUIRED
    assert ledger.mark_sending("t1", "a", NOW)
    ledger.note_webhook("t1", "v-1", NOW + 1)  # a fast job: its webhook came before we read the create's answer
    assert ledger.record_submission("t1", "a", "v-1", NOW + 2, poll_message="{}")
    assert (ledger.get("t1").vendor_task_id, ledger.get("t1").webhook_vendor_ids) == ("v-1", ())


def test_a_webhook_resolves_an_ambiguous_submit_by_adopting_the_job_it_names(ledger):
    from jobqueue.ledger.base import WebhookState

    _ambiguous(ledger)
    assert _claim(ledger, "b", now=NOW + 2).state is ClaimState.AMBIGUOUS  # no webhook yet: still nobody submits
    assert ledger.advance("t1", 0, NOW + 2)  # the submit hop handed on to its waiting successor (seq 1)
    note = ledger.note_webhook("t1", "v-5", NOW + 3)
    assert (note.state, note.seq, note.poll_message, note.vendor_task_id) == (
        WebhookState.ADOPTED,
        1,
        '{"poll": 1}',
        "v-5",
    )
    record = ledger.get("t1")
    assert (record.submit_state, record.vendor_task_id, record.adopted_at) == (SubmitState.SUBMITTED, "v-5", NOW + 3)
    assert record.webhook_vendor_ids == () and record.submitted_at is None  # no runtime estimate from it
    claim = _claim(ledger, "c", now=NOW + 4)
    assert (claim.state, claim.vendor_task_id) == (ClaimState.SUBMITTED, "v-5")
    assert ledger.by_vendor_task("v-5").task_id == "t1"
    assert ledger.note_webhook("t1", "v-5", NOW + 5).state is WebhookState.DUPLICATE


def test_a_webhook_that_came_while_the_submit_was_in_flight_is_adopted_when_it_turns_ambiguous(ledger):
    from jobqueue.ledger.base import WebhookState

    assert _claim(ledger, "a").state is ClaimState.ACQUIRED
    assert ledger.mark_sending("t1", "a", NOW)
    assert ledger.note_webhook("t1", "v-5", NOW + 1).state is WebhookState.NO_SUBMISSION
    assert ledger.mark_ambiguous("t1", "a", NOW + 2)  # the create's answer was lost after all
    assert (ledger.get("t1").submit_state, ledger.get("t1").vendor_task_id) == (SubmitState.SUBMITTED, "v-5")


def test_a_runner_killed_mid_submit_is_resolved_by_the_webhook_at_the_next_claim(ledger):
    from jobqueue.ledger.base import WebhookState

    assert _claim(ledger, "a").state is ClaimState.ACQUIRED
    assert ledger.mark_sending("t1", "a", NOW)  # ... and the runner is SIGKILLed
    assert ledger.note_webhook("t1", "v-5", NOW + 1).state is WebhookState.NO_SUBMISSION
    assert _claim(ledger, "b", now=NOW + 2).state is ClaimState.HELD  # its lease still runs
    claim = _claim(ledger, "b", now=NOW + LEASE_S + 1)
    assert (claim.state, claim.vendor_task_id) == (ClaimState.SUBMITTED, "v-5")
    assert ledger.get("t1").adopted_at == NOW + LEASE_S + 1


def test_of_two_vendor_jobs_the_first_seen_finished_is_used_and_the_other_cancelled(ledger):
    _ambiguous(ledger)
    ledger.reset_submit("t1", NOW + 2)  # an operator resubmitted: a second job, v-2, is recorded
    assert _claim(ledger, "b", now=NOW + 3).state is ClaimState.ACQUIRED
    assert ledger.record_submission("t1", "b", "v-2", NOW + 4, poll_message="{}")
    ledger.note_webhook("t1", "v-1", NOW + 5)  # the first job turns up after all, finished
    done = ledger.mark_vendor_done("t1", "v-1", NOW + 6)
    assert (done.use, done.cancel) == ("v-1", ("v-2",))
    record = ledger.get("t1")
    assert (record.vendor_task_id, record.cancelled_vendor_ids, record.webhook_vendor_ids) == ("v-1", ("v-2",), ())
    assert ledger.by_vendor_task("v-1").task_id == "t1"
    late = ledger.mark_vendor_done("t1", "v-2", NOW + 7)  # the cancelled one, seen later: v-1 stays in use
    assert (late.use, late.cancel) == ("v-1", ())


def test_a_job_that_calls_back_after_an_operator_reset_is_adopted_instead_of_submitting_again(ledger):
    _ambiguous(ledger)
    assert ledger.reset_submit("t1", NOW + 2)  # the operator chose --resubmit ...
    ledger.note_webhook("t1", "v-1", NOW + 3)  # ... and the first job called back before the redrive ran
    claim = _claim(ledger, "b", now=NOW + 4)
    assert (claim.state, claim.vendor_task_id) == (ClaimState.SUBMITTED, "v-1")


def test_a_second_job_finishing_after_the_used_one_is_recorded_and_not_used(ledger):
    from jobqueue.ledger.base import WebhookState

    _submitted(ledger)
    assert ledger.mark_vendor_done("t1", "v-1", NOW + 2).use == "v-1"
    assert ledger.note_webhook("t1", "v-2", NOW + 3).state is WebhookState.OTHER_JOB
    assert ledger.mark_vendor_done("t1", "v-2", NOW + 4).use == "v-1"
    assert ledger.get("t1").webhook_vendor_ids == ("v-2",)


def test_a_runtime_estimate_starts_at_its_first_observation_and_stays_in_bounds(ledger):
    assert ledger.runtime_estimate("p") is None
    first = ledger.observe_runtime("p", 6.0, first_poll=False, low_s=3, high_s=100)
    assert (first.estimate_s, first.samples) == (6.0, 1)
    early = ledger.observe_runtime("p", 6.0, first_poll=True, low_s=3, high_s=100)
    assert early.estimate_s == pytest.approx(5.7) and early.samples == 2
    late = ledger.observe_runtime("p", 9.7, first_poll=False, low_s=3, high_s=100)
    assert late.estimate_s == pytest.approx(6.9)
    assert ledger.observe_runtime("p", 1000, first_poll=False, low_s=3, high_s=8).estimate_s == 8
    stored = ledger.runtime_estimate("p")
    assert stored is not None and stored.estimate_s == 8 and stored.samples == 4
    assert ledger.runtime_estimate("other") is None


def test_a_runtime_estimate_is_read_once_per_freshness_window_and_own_writes_are_seen_at_once(make_ledger):
    a, b = make_ledger(), make_ledger()
    a.estimate_fresh_s = 0.2
    assert a.runtime_estimate("p") is None
    b.observe_runtime("p", 6.0, first_poll=False, low_s=3, high_s=100)
    assert a.runtime_estimate("p") is None  # as read moments ago
    assert a.observe_runtime("p", 9.0, first_poll=False, low_s=3, high_s=100).samples == 2  # folded into b's
    assert a.runtime_estimate("p").samples == 2  # its own write, at once
    b.observe_runtime("p", 9.0, first_poll=False, low_s=3, high_s=100)
    time.sleep(0.25)
    assert a.runtime_estimate("p").samples == 3  # the other writer's, once the window passed


def test_observations_closer_than_the_freshness_window_are_left_out_when_the_caller_gives_its_time(ledger):
    ledger.estimate_fresh_s = 1.0
    assert ledger.observe_runtime("p", 6.0, first_poll=False, low_s=3, high_s=100, now=NOW).samples == 1
    assert ledger.observe_runtime("p", 50.0, first_poll=False, low_s=3, high_s=100, now=NOW + 0.5).samples == 1
    assert ledger.runtime_estimate("p").estimate_s == 6.0  # left out, not stored
    later = ledger.observe_runtime("p", 9.0, first_poll=False, low_s=3, high_s=100, now=NOW + 1.0)
    assert (later.samples, later.estimate_s) == (2, pytest.approx(6.9))
    assert ledger.observe_runtime("p", 9.0, first_poll=False, low_s=3, high_s=100).samples == 3  # no time: folded


# -- the record cache: an optimisation that never changes an answer ---------------------------------------------
def test_begin_hop_carries_the_record_it_was_decided_on(ledger):
    assert ledger.begin_hop("t1", 0, 30, NOW, "u1") == Hop(HopState.RUN)  # the answer compares without it
    ran = ledger.begin_hop("t1", 1, 30, NOW + 1, "u1")
    assert ran.state is HopState.RUN and ran.record == ledger.get("t1")
    assert (ran.record.hop_seq, ran.record.hop_until, ran.record.user_id) == (1, NOW + 31, "u1")
    ledger.advance("t1", 1, NOW + 2)
    stale = ledger.begin_hop("t1", 1, 30, NOW + 3, "u1")
    assert stale.state is HopState.STALE and stale.record == ledger.get("t1")
    assert ledger.begin_hop("new", 0, 30, NOW, "u1").record == ledger.get("new")


def test_peek_hop_answers_as_begin_hop_would_and_writes_nothing(make_ledger):
    ledger, other = make_ledger(), make_ledger()
    assert ledger.peek_hop("t1", 1, NOW, "u1") == Hop(HopState.RUN) and ledger.get("t1") is None
    ledger.begin_hop("t1", 0, 30, NOW, "u1")
    ledger.advance("t1", 0, NOW + 1)
    stored = ledger.get("t1")
    peeked = ledger.peek_hop("t1", 1, NOW + 2, "u1")
    assert peeked == Hop(HopState.RUN) and peeked.record == stored
    assert ledger.peek_hop("t1", 1, NOW + 2, "u2").state is HopState.FOREIGN
    assert ledger.peek_hop("t1", 0, NOW + 2, "u1").state is HopState.STALE
    other.begin_hop("t1", 1, 30, NOW + 3, "u1")  # another object's runner leases hop 1
    busy = make_ledger().peek_hop("t1", 1, NOW + 4, "u1")  # (this one may answer RUN from its record cache)
    assert busy.state is HopState.BUSY and busy.retry_after_s == 29
    assert ledger.peek_hop("t1", 2, NOW + 4, "u1") == Hop(HopState.RUN)  # a later hop is not refused
    assert ledger.get("t1").version == stored.version + 1  # only the other object's lease was written


def test_an_unleased_advance_rises_only_while_no_runner_began_the_hop(ledger):
    def commit(record, expected_version):  # a plain write of the record, with nothing else in it
        return record is None or ledger._save(record, expected_version)

    ledger.begin_hop("t1", 0, 30, NOW)
    ledger.advance("t1", 0, NOW + 1)
    assert ledger.advance_with("t1", 1, NOW + 2, commit, unleased=True) is True
    assert ledger.advance_with("t1", 1, NOW + 3, commit, unleased=True) is False  # a second run of hop 1
    assert ledger.get("t1").seq == 1
    assert ledger.begin_hop("t1", 2, 30, NOW + 4).state is HopState.RUN  # hop 2 leased (a hint that found it done)
    assert ledger.advance_with("t1", 2, NOW + 5, commit, unleased=True) is False
    assert ledger.get("t1").seq == 1
    assert ledger.advance_with("t1", 3, NOW + 6, commit, unleased=True) is True  # a later hop, as begin_hop admits
    assert ledger.advance_with("missing", 0, NOW, commit, unleased=True) is False and ledger.get("missing") is None


def test_a_first_hop_of_a_task_another_object_created_gets_the_stored_answer(make_ledger):
    a, b = make_ledger(), make_ledger()
    assert b.begin_hop("t1", 0, 30, NOW, "u1").state is HopState.RUN
    busy = a.begin_hop("t1", 0, 30, NOW + 1, "u1")  # a guesses an insert, loses, and answers from the stored record
    assert busy.state is HopState.BUSY and busy.retry_after_s == 29
    assert a.begin_hop("t1", 0, 30, NOW + 1, "u2").state is HopState.FOREIGN
    b.advance("t1", 0, NOW + 2)
    assert make_ledger().begin_hop("t1", 0, 30, NOW + 3, "u1").state is HopState.STALE


def test_a_record_changed_behind_a_cached_copy_still_gets_the_right_answers(make_ledger):
    """Two ledger objects on one store, each with a record cache; ``b`` writes behind ``a``'s back. ``a``'s
    answers, read-only ones and changes alike, are those of the stored record, and its changes keep ``b``'s."""
    from jobqueue.ledger.record_cache import RecordCache

    a, b = make_ledger(), make_ledger()
    a.use_record_cache(RecordCache(ttl_s=3600))
    b.use_record_cache(RecordCache(ttl_s=3600))
    assert a.begin_hop("t1", 0, 30, NOW).state is HopState.RUN  # a holds: hop 0 leased, nothing handled

    b.advance("t1", 0, NOW + 1)
    assert b.begin_hop("t1", 1, 30, NOW + 2).state is HopState.RUN
    # a's copy says hop 0 is leased (BUSY, a read-only answer); the store says it was handled
    assert a.begin_hop("t1", 0, 30, NOW + 3).state is HopState.STALE

    b.advance("t1", 1, NOW + 4)
    assert a.advance("t1", 1, NOW + 5) is False  # a's copy (seq 0) would say it rose

    b.record_outcome("t1", DONE, NOW + 6)
    assert a.record_outcome("t1", FAILED, NOW + 7) == DONE  # a's copy has no outcome: the first still wins

    b.mark_reported("t1", NOW + 8)
    assert a.advance("t1", 2, NOW + 9) is True  # a change made on a stale copy is made again on the stored record
    stored = b.get("t1")
    assert (stored.seq, stored.outcome, stored.reported_at) == (2, DONE, NOW + 8)
    assert a.get("t1") == stored
