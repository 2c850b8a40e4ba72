"""The ledger's rules as pure functions (no backend): each returns (new record or None, result).

The contract suite checks the same behaviour through every backend; here each transition is pinned on its
own, including which calls write nothing, plus the record's JSON form and index keys.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobqueue.ledger import rules
from jobqueue.ledger.record import Claim, ClaimState, Hop, HopState, Submission, SubmitState, TaskRecord
from relay_core.domain import Outcome, Status

NOW = 1_700_000_000.0
DONE = Outcome(Status.DONE, result_keys=("output/u1/t1/a.jpg",), vendor_task_id="v-1", detail="kept")
FAILED = Outcome(Status.FAILED, error_reason="生成失败")


def _stored(**fields) -> TaskRecord:
    return replace(TaskRecord.blank("t1", NOW - 100), version=3, **fields)


def _leased(token="a", until=NOW + 30, state=SubmitState.LEASED) -> TaskRecord:
    return _stored(submit_state=state, token=token, lease_until=until, deadline_at=NOW + 600)


def test_claim_on_no_record_creates_one_leased_with_the_deadline_and_user():
    new, claim = rules.claim_submit(None, "t1", "a", 30, NOW + 600, NOW, user_id="u1")
    assert claim == Claim(ClaimState.ACQUIRED)
    assert new == TaskRecord(
        task_id="t1",
        submit_state=SubmitState.LEASED,
        token="a",
        lease_until=NOW + 30,
        deadline_at=NOW + 600,
        user_id="u1",
        created_at=NOW,
        updated_at=NOW,
    )


def test_claim_answers_without_writing_when_nothing_changes():
    held = _leased()
    assert rules.claim_submit(held, "t1", "b", 30, NOW + 600, NOW + 10) == (
        None,
        Claim(ClaimState.HELD, retry_after_s=20),
    )
    submitted = _stored(submit_state=SubmitState.SUBMITTED, vendor_task_id="v-1", deadline_at=NOW + 600)
    assert rules.claim_submit(submitted, "t1", "b", 30, NOW + 600, NOW) == (
        None,
        Claim(ClaimState.SUBMITTED, vendor_task_id="v-1"),
    )
    ambiguous = _stored(submit_state=SubmitState.AMBIGUOUS, deadline_at=NOW + 600)
    assert rules.claim_submit(ambiguous, "t1", "b", 30, NOW + 600, NOW) == (None, Claim(ClaimState.AMBIGUOUS))
    sending = _leased(token="tok", state=SubmitState.SENDING)
    assert rules.claim_submit(sending, "t1", "b", 30, NOW + 600, NOW + 29)[0] is None


def test_claim_keeps_the_first_deadline_and_user_even_when_held():
    new, claim = rules.claim_submit(_leased(), "t1", "b", 30, NOW + 999, NOW, user_id="u2")
    assert claim.state is ClaimState.HELD
    assert (new.user_id, new.deadline_at, new.updated_at) == ("u2", NOW + 600, NOW)  # no user was known
    again, _ = rules.claim_submit(new, "t1", "c", 30, NOW + 999, NOW, user_id="u3")
    assert again is None


def test_claim_takes_over_a_lapsed_lease_renews_its_own_and_turns_a_lapsed_send_ambiguous():
    new, claim = rules.claim_submit(_leased(until=NOW), "t1", "b", 30, 0, NOW)
    assert claim.state is ClaimState.ACQUIRED and (new.token, new.lease_until) == ("b", NOW + 30)
    new, claim = rules.claim_submit(_leased(), "t1", "a", 30, 0, NOW + 20)
    assert claim.state is ClaimState.ACQUIRED and new.lease_until == NOW + 50
    new, claim = rules.claim_submit(_leased(state=SubmitState.SENDING, until=NOW), "t1", "b", 30, 0, NOW)
    assert claim.state is ClaimState.AMBIGUOUS
    assert (new.submit_state, new.lease_until, new.token) == (SubmitState.AMBIGUOUS, 0.0, "a")


def test_only_the_holder_moves_its_claim_on():
    sending, ok = rules.mark_sending(_leased(), "a", NOW)
    assert ok and sending.submit_state is SubmitState.SENDING and sending.lease_until == NOW + 30
    assert rules.mark_sending(sending, "a", NOW) == (None, False)  # only from leased
    for rule in (rules.mark_sending, rules.mark_ambiguous, rules.release_submit):
        assert rule(_leased(), "b", NOW) == (None, False)
        assert rule(None, "a", NOW) == (None, False)
    assert rules.record_submission(_leased(), "b", "v", NOW) == (None, False)

    done, ok = rules.record_submission(sending, "a", "v-1", NOW + 1)
    assert ok and (done.submit_state, done.vendor_task_id, done.lease_until) == (SubmitState.SUBMITTED, "v-1", 0)
    assert rules.record_submission(done, "a", "v-2", NOW + 2) == (None, False)
    ambiguous, ok = rules.mark_ambiguous(_leased(), "a", NOW)
    assert ok and (ambiguous.submit_state, ambiguous.token) == (SubmitState.AMBIGUOUS, "a")
    released, ok = rules.release_submit(sending, "a", NOW)
    assert ok and (released.submit_state, released.token, released.lease_until) == (SubmitState.NONE, None, 0)


@pytest.mark.parametrize("state", [SubmitState.LEASED, SubmitState.SENDING, SubmitState.AMBIGUOUS])
def test_reset_forgets_any_claim_but_a_submission(state):
    new, ok = rules.reset_submit(_leased(state=state), NOW)
    assert ok and (new.submit_state, new.token, new.lease_until, new.updated_at) == (SubmitState.NONE, None, 0, NOW)
    assert rules.reset_submit(_stored(submit_state=SubmitState.SUBMITTED), NOW) == (None, False)
    assert rules.reset_submit(_stored(), NOW) == (None, False)
    assert rules.reset_submit(None, NOW) == (None, False)


def test_advance_only_raises():
    new, rose = rules.advance(None, "t1", 0, NOW)
    assert rose and new.seq == 0 and new.created_at == NOW
    assert rules.advance(None, "t1", -1, NOW) == (None, False)
    assert rules.advance(_stored(seq=5), "t1", 5, NOW) == (None, False)
    assert rules.advance(_stored(seq=5), "t1", 4, NOW) == (None, False)
    assert rules.advance(_stored(seq=5), "t1", 6, NOW)[0].seq == 6


def test_advance_submitted_records_the_submission_and_raises_the_seq_as_one_change():
    sending = _leased(token="tok", state=SubmitState.SENDING)
    new, done = rules.advance_submitted(sending, "t1", 0, NOW, Submission("tok", "v-1", "poll"))
    assert done and (new.seq, new.submit_state, new.vendor_task_id, new.poll_message) == (
        0,
        SubmitState.SUBMITTED,
        "v-1",
        "poll",
    )
    other = rules.advance_submitted(sending, "t1", 0, NOW, Submission("other", "v-1", "poll"))
    assert not other[1] and (other[0].seq, other[0].submit_state) == (0, SubmitState.SENDING)  # only the seq rose
    stale = rules.advance_submitted(replace(sending, seq=3), "t1", 0, NOW, Submission("tok", "v-1", "poll"))
    assert not stale[1] and (stale[0].seq, stale[0].vendor_task_id) == (3, "v-1")  # recorded, the seq kept


def test_begin_hop_admits_one_runner_per_hop():
    new, hop = rules.begin_hop(None, "t1", 0, 30, NOW)
    assert hop == Hop(HopState.RUN) and (new.hop_seq, new.hop_until) == (0, NOW + 30)
    assert rules.begin_hop(new, "t1", 0, 30, NOW + 10) == (None, Hop(HopState.BUSY, retry_after_s=20))
    assert rules.begin_hop(new, "t1", 0, 30, NOW + 30)[1] == Hop(HopState.RUN)  # the lease lapsed
    assert rules.begin_hop(_stored(hop_seq=3), "t1", 2, 30, NOW) == (None, Hop(HopState.STALE))
    assert rules.begin_hop(_stored(seq=3), "t1", 3, 30, NOW) == (None, Hop(HopState.STALE))


def test_hand_on_advances_and_takes_the_next_hops_lease_as_one_change_or_writes_nothing():
    running = _stored(seq=2, hop_seq=3, hop_until=NOW + 30, user_id="u1")
    new, hop = rules.hand_on(running, "t1", 3, 60, NOW, user_id="u1")
    assert hop == Hop(HopState.RUN) and (new.seq, new.hop_seq, new.hop_until) == (3, 4, NOW + 60)
    assert rules.hand_on(running, "t1", 3, 60, NOW, user_id="u2") == (None, Hop(HopState.FOREIGN))
    leased_elsewhere = _stored(seq=2, hop_seq=4, hop_until=NOW + 30)
    assert rules.hand_on(leased_elsewhere, "t1", 3, 60, NOW) == (None, Hop(HopState.BUSY, retry_after_s=30))
    assert rules.hand_on(_stored(seq=5), "t1", 3, 60, NOW) == (None, Hop(HopState.STALE))


def test_hand_on_with_an_outcome_records_the_first_one_and_the_report_it_owes():
    new, hop = rules.hand_on(_stored(seq=2, hop_seq=3), "t1", 3, 60, NOW, outcome=DONE, report_message="r")
    assert hop.state is HopState.RUN and (new.outcome, new.outcome_at, new.report_message) == (DONE, NOW, "r")
    assert new.unreported_since() == NOW
    kept, _ = rules.hand_on(_stored(outcome=FAILED, outcome_at=NOW - 5), "t1", 3, 60, NOW, outcome=DONE)
    assert (kept.outcome, kept.outcome_at) == (FAILED, NOW - 5)


def test_a_vendor_job_seen_finished_is_recorded_with_the_hop_end_as_mark_vendor_done_would():
    submitted = _stored(seq=1, hop_seq=2, hop_until=NOW + 30, vendor_task_id="v-1", submitted_at=NOW - 40)
    new, hop = rules.hand_on(submitted, "t1", 2, 60, NOW, vendor_done="v-1")
    assert hop.state is HopState.RUN and (new.seq, new.hop_seq, new.vendor_done_at) == (2, 3, NOW)
    new, rose = rules.advance_vendor_done(submitted, "t1", 2, NOW, "v-1")
    assert rose and (new.seq, new.vendor_done_at) == (2, NOW)
    # seen before: the first sighting's time stays, and a repeated hop end writes nothing
    seen = replace(submitted, seq=2, vendor_done_at=NOW - 5)
    assert rules.advance_vendor_done(seen, "t1", 2, NOW, "v-1") == (None, False)
    # another job was recorded finished first: this one is only kept as the task's, not used
    other = replace(submitted, vendor_task_id="v-2", vendor_done_at=NOW - 5)
    new, rose = rules.advance_vendor_done(other, "t1", 2, NOW, "v-1")
    assert rose and (new.vendor_task_id, new.vendor_done_at, new.webhook_vendor_ids) == ("v-2", NOW - 5, ("v-1",))


def test_a_submit_hop_takes_the_submit_claim_with_its_lease_in_one_change():
    new, hop = rules.begin_hop(None, "t1", 0, 30, NOW, "u1", submit_token="a", deadline_at=NOW + 600)
    assert hop == Hop(HopState.RUN) and hop.claim == Claim(ClaimState.ACQUIRED) and hop.claim.token == "a"
    assert (new.hop_seq, new.hop_until, new.submit_state, new.token) == (0, NOW + 30, SubmitState.LEASED, "a")
    assert (new.lease_until, new.deadline_at, new.user_id) == (NOW + 30, NOW + 600, "u1")
    submitted = _stored(submit_state=SubmitState.SUBMITTED, vendor_task_id="v-1", deadline_at=NOW + 600)
    new, hop = rules.begin_hop(submitted, "t1", 0, 30, NOW, submit_token="b", deadline_at=NOW + 600)
    assert hop.claim == Claim(ClaimState.SUBMITTED, vendor_task_id="v-1") and new.submit_state is SubmitState.SUBMITTED
    # no claim for a task with an outcome, past its deadline, or when the hop is not run
    finished = _stored(outcome=FAILED, outcome_at=NOW - 5)
    assert rules.begin_hop(finished, "t1", 0, 30, NOW, submit_token="c", deadline_at=NOW + 600)[1].claim is None
    late, hop = rules.begin_hop(None, "t1", 0, 30, NOW, submit_token="d", deadline_at=NOW - 1)
    assert hop.claim is None and late.submit_state is SubmitState.NONE
    busy = _stored(hop_seq=0, hop_until=NOW + 10)
    assert rules.begin_hop(busy, "t1", 0, 30, NOW, submit_token="e", deadline_at=NOW + 600)[0] is None


def test_end_hop_marks_the_report_and_advances_as_one_change():
    new, rose = rules.end_hop(_stored(seq=5, outcome=DONE), "t1", 6, NOW, reported=True)
    assert rose and (new.seq, new.reported_at) == (6, NOW)
    new, rose = rules.end_hop(_stored(seq=6, outcome=DONE), "t1", 6, NOW, reported=True)  # a repeat of the hop
    assert not rose and new.reported_at == NOW
    assert rules.end_hop(_stored(seq=6), "t1", 6, NOW, reported=False) == (None, False)


def test_release_hop_drops_only_that_hops_lease():
    held = _stored(hop_seq=3, hop_until=NOW + 30)
    assert rules.release_hop(held, 2, NOW) == (None, False)
    new, ok = rules.release_hop(held, 3, NOW)
    assert ok and (new.hop_seq, new.hop_until) == (3, 0)
    assert rules.release_hop(new, 3, NOW) == (None, False)
    assert rules.release_hop(None, -1, NOW) == (None, False)


def test_the_first_outcome_is_kept_and_returned():
    new, stored = rules.record_outcome(None, "t1", DONE, NOW, user_id="u1")
    assert stored == DONE and (new.outcome, new.outcome_at, new.user_id) == (DONE, NOW, "u1")
    assert rules.record_outcome(new, "t1", FAILED, NOW + 1) == (None, DONE)


def test_mark_reported_records_the_first_acknowledgement_of_a_known_task():
    assert rules.mark_reported(None, NOW) == (None, False)
    new, ok = rules.mark_reported(_stored(outcome=DONE), NOW)
    assert ok and new.reported_at == NOW
    assert rules.mark_reported(new, NOW + 1) == (None, False)


def test_rules_leave_the_version_to_the_ledger():
    new, _ = rules.advance(_stored(), "t1", 1, NOW)
    assert new.version == 3


def test_index_keys_follow_the_record():
    record = _stored(deadline_at=NOW + 600)
    assert (record.open_deadline(), record.unreported_since()) == (NOW + 600, None)
    assert _stored().open_deadline() is None  # no deadline known
    done = replace(record, outcome=DONE, outcome_at=NOW)
    assert (done.open_deadline(), done.unreported_since()) == (None, NOW)
    assert replace(done, reported_at=NOW + 1).unreported_since() is None


def test_a_record_round_trips_through_json():
    full = TaskRecord(
        task_id="t1",
        version=7,
        submit_state=SubmitState.SUBMITTED,
        token="tok",
        lease_until=0.0,
        vendor_task_id="v-1",
        deadline_at=NOW + 0.125,
        seq=4,
        hop_seq=5,
        hop_until=NOW + 30,
        outcome=DONE,
        outcome_at=NOW,
        reported_at=NOW + 1,
        user_id="u1",
        created_at=NOW - 1,
        updated_at=NOW + 1,
    )
    raw = full.to_json()
    assert '"version"' not in raw and '"submit_state":"submitted"' in raw
    back = TaskRecord.from_json(raw, 7)
    assert back == full and back.outcome.detail == "kept"
    assert TaskRecord.from_json(raw.encode(), 8).version == 8
    assert TaskRecord.from_json('{"task_id": "t2", "someday": 1}', 1) == replace(TaskRecord("t2"), version=1)
