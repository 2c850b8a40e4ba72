"""The consumer's decisions, one step at a time, on real SQLite/local-file backends and a scripted vendor."""

from __future__ import annotations

import time

import pytest

from consumer.decisions import Continue, Defer, Drop, Finish, ToDeadLetter
from consumer.dispatch import handle
from consumer.effects import apply, forward
from jobqueue.ledger.base import ClaimState
from jobqueue.message import Stage, parse
from relay_core.domain import Outcome, Status
from tests.unit.step_harness import BUCKET, ScriptedVendor, make_services, message
from vendors.base import VendorState, VendorStatus
from vendors.emulator.media import make_jpeg
from vendors.errors import AmbiguousSubmit, AuthError, VendorBusy, VendorTaskFailed, VendorUnavailable


@pytest.fixture
def vendor():
    return ScriptedVendor()


@pytest.fixture
def svc(tmp_path, vendor, relay_home):
    services = make_services(tmp_path, vendor)
    services.store.put_bytes(BUCKET, "input/u1/t1/original.jpg", make_jpeg(1))
    yield services
    services.close()


def run(svc, msg):
    """Decide one message and apply the decision as the drain loop would (the delete aside)."""
    parsed, decision = handle(msg.dumps(), svc)
    if not isinstance(decision, ToDeadLetter):
        forward(svc, parsed, decision)
    return decision


def test_submit_records_the_vendor_task_and_hands_on_to_poll(svc, vendor):
    vendor.submits.append("19000000000000000001")
    move = run(svc, message())
    assert isinstance(move, Continue) and move.message.stage is Stage.POLL
    assert move.message.vendor_task_id == "19000000000000000001" and move.message.seq == 1
    assert move.delay_s == svc.pipelines.get("promo_poster").poll.first_s
    assert svc.ledger.get("t1").version == 4  # writes: lease with the claim, sending, submission, seq
    [(_, request)] = [c for c in vendor.calls if c[0] == "submit"]
    assert request.nodes[0].field_value == "api/original.jpg"  # "{input}" became the uploaded file


def test_ambiguous_submit_dead_letters_and_never_resubmits(svc, vendor):
    vendor.submits.append(AmbiguousSubmit("read timeout after sending"))
    move = run(svc, message())
    assert isinstance(move, ToDeadLetter) and "ambiguous" in move.reason and "dlq redrive --resubmit" in move.reason
    assert svc.ledger.claim_submit("t1", "other", 60, 0, svc.clock()).state is ClaimState.AMBIGUOUS
    # a redrive (once the dead hop's lease has lapsed) without --resubmit dead-letters again, vendor untouched
    later = time.time() + svc.settings.visibility_timeout_s + 1
    svc.clock = lambda: later
    assert isinstance(run(svc, message()), ToDeadLetter)
    assert vendor.count("submit") == 1


def _with_webhooks(svc):
    svc.settings = svc.settings.replace(webhook_base_url="https://hooks.example.com/release", webhook_secret="hook-key")


def test_an_ambiguous_submit_waits_for_the_webhook_that_names_its_job(svc, vendor):
    _with_webhooks(svc)
    vendor.submits.append(AmbiguousSubmit("502 after sending"))
    move = run(svc, message())
    assert isinstance(move, Continue) and move.message.stage is Stage.SUBMIT and move.message.seq == 1
    assert move.delay_s > 0 and svc.clock() + move.delay_s <= move.message.deadline_at
    assert "/runninghub/t1/" in vendor.calls[-1][1].webhook_url  # the URL that lets the vendor name our task
    again = run(svc, move.message)  # no webhook yet: wait again, nothing resubmitted
    assert isinstance(again, Continue) and again.message.stage is Stage.SUBMIT and vendor.count("submit") == 1
    note = svc.ledger.note_webhook("t1", "19000000000000000005", svc.clock())  # the vendor's webhook
    assert note.state.value == "adopted" and note.vendor_task_id == "19000000000000000005"
    resumed = run(svc, again.message)
    assert isinstance(resumed, Continue) and resumed.message.stage is Stage.POLL
    assert resumed.message.vendor_task_id == "19000000000000000005" and vendor.count("submit") == 1


def test_an_ambiguous_submit_without_a_webhook_by_the_deadline_goes_to_an_operator(svc, vendor):
    _with_webhooks(svc)
    vendor.submits.append(AmbiguousSubmit("502 after sending"))
    waiting = run(svc, message(deadline_in_s=60))
    assert isinstance(waiting, Continue)
    later = waiting.message.deadline_at + 1
    svc.clock = lambda: later
    move = run(svc, waiting.message)
    assert isinstance(move, ToDeadLetter) and "no webhook named a job before the deadline" in move.reason
    assert "dlq redrive --resubmit" in move.reason and vendor.count("submit") == 1


def test_a_runner_killed_mid_submit_resumes_from_the_webhook(svc, vendor):
    _with_webhooks(svc)
    now = svc.clock()
    assert svc.ledger.claim_submit("t1", "dead", 30, now + 600, now).state is ClaimState.ACQUIRED
    assert svc.ledger.mark_sending("t1", "dead", now)  # ... SIGKILL: the job was created, the answer never read
    svc.ledger.note_webhook("t1", "19000000000000000006", now + 5)
    later = now + 31
    svc.clock = lambda: later
    move = run(svc, message())  # the redelivered SUBMIT
    assert isinstance(move, Continue) and move.message.vendor_task_id == "19000000000000000006"
    assert vendor.count("submit") == 0


def test_a_webhook_hint_racing_the_waiting_submit_on_one_hop_leaves_one_chain(svc, vendor):
    """Both messages of an adopted task's next hop, run at once by two threads, 40 times: one goes on to POLL,
    the other is deferred (busy) or dropped (stale); never two successors, never none."""
    import threading

    for n in range(40):
        task, now = f"race{n}", svc.clock()
        waiting = message(task_id=task, input=message().input)  # the ambiguous submit's waiting hop ...
        svc.ledger.claim_submit(task, "a", 30, waiting.deadline_at, now, user_id="u1")
        svc.ledger.mark_sending(task, "a", now, poll_message=waiting.next(Stage.POLL, polls=0).dumps())
        svc.ledger.mark_ambiguous(task, "a", now)
        svc.ledger.advance(task, 0, now)
        waiting = waiting.next()  # ... at seq 1
        note = svc.ledger.note_webhook(task, f"19000000000000{n:06}", now)
        hint = parse(note.poll_message).replace(seq=note.seq, vendor_task_id=note.vendor_task_id)
        vendor.statuses.append(VendorStatus(VendorState.RUNNING))
        decisions: list[object] = []
        threads = [threading.Thread(target=lambda m=m, out=decisions: out.append(run(svc, m))) for m in (waiting, hint)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        went_on = [d for d in decisions if isinstance(d, Continue)]
        assert len(went_on) == 1 and went_on[0].message.stage is Stage.POLL, decisions
        assert all(isinstance(d, (Defer, Drop)) for d in decisions if d is not went_on[0]), decisions
    assert vendor.count("submit") == 0


def test_of_two_vendor_jobs_the_first_finished_is_collected_and_the_other_cancelled(svc, vendor):
    now = svc.clock()
    svc.ledger.claim_submit("t1", "a", 30, now + 600, now)
    svc.ledger.record_submission("t1", "a", "19000000000000000001", now, poll_message=message(Stage.POLL).dumps())
    svc.ledger.note_webhook("t1", "19000000000000000002", now)  # a second job of the task ended first
    vendor.statuses.append(VendorStatus(VendorState.SUCCEEDED))
    move = run(svc, message(Stage.POLL, vendor_task_id="19000000000000000002", seq=1))
    assert isinstance(move, Continue) and move.message.stage is Stage.COLLECT
    assert move.message.vendor_task_id == "19000000000000000002"
    assert ("cancel", "19000000000000000001") in vendor.calls
    record = svc.ledger.get("t1")
    assert (record.vendor_task_id, record.cancelled_vendor_ids) == ("19000000000000000002", ("19000000000000000001",))


def _submitted(svc, vendor_task_id="19000000000000000001"):
    now = svc.clock()
    svc.ledger.claim_submit("t1", "a", 30, now + 600, now)
    svc.ledger.record_submission("t1", "a", vendor_task_id, now - 20, poll_message=message(Stage.POLL).dumps())
    svc.ledger.advance("t1", 0, now)


def test_a_poll_that_sees_the_only_job_succeed_records_it_with_the_hops_end(svc, vendor):
    """One ledger write fewer: the hop's record says what ``mark_vendor_done`` would answer, and the decision
    carries the job, which the end of the hop records (here through ``forward``, as without a hop commit)."""
    now = svc.clock()
    svc.clock = lambda: now
    _submitted(svc)
    vendor.statuses.append(VendorStatus(VendorState.SUCCEEDED))
    poll = message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1)
    parsed, move = handle(poll.dumps(), svc)
    assert isinstance(move, Continue) and move.message.stage is Stage.COLLECT
    assert move.vendor_done == "19000000000000000001"
    leased = svc.ledger.get("t1")
    assert leased.vendor_done_at is None and leased.hop_seq == 1  # the step itself wrote only the hop's lease
    estimate = svc.ledger.runtime_estimate("promo_poster")
    assert estimate is not None and estimate.samples == 1  # the runtime was observed from the record's answer
    forward(svc, parsed, move)
    record = svc.ledger.get("t1")
    assert (record.seq, record.vendor_done_at) == (1, now)


def test_collect_joins_the_hop_of_the_poll_that_saw_the_job_succeed(svc, vendor):
    """Asked to (``join``), the runner goes on with COLLECT in the poll's hop: the decision is COLLECT's (here: the
    vendor's answer had no outputs, so the task fails), about the hop's own seq, and it carries the poll's sighting
    for the hop's end to record."""
    now = svc.clock()
    svc.clock = lambda: now
    _submitted(svc)
    vendor.statuses.append(VendorStatus(VendorState.SUCCEEDED))  # kept for COLLECT: one status query in all
    parsed, move = handle(
        message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1).dumps(), svc, join=lambda: True
    )
    assert (parsed.stage, parsed.seq) == (Stage.COLLECT, 1)
    assert isinstance(move, Finish) and move.outcome.status is Status.FAILED and "0 outputs" in move.outcome.detail
    assert move.vendor_done == "19000000000000000001" and len(vendor.calls) == 1
    assert move.report_joins  # the lease has room: REPORT may run in this hop too
    forward(svc, parsed, move)
    record = svc.ledger.get("t1")
    assert record.vendor_done_at == now and record.outcome.status is Status.FAILED and record.seq == 1


def _poll_seeing(svc, vendor, state: VendorState, why: str):
    """Handle hop 1's POLL whose status query answers ``state``: ``why`` "not asked" (no joining), "half the lease
    spent" (the query takes just over half the hop's lease), or anything else (asked, with time to spare)."""
    clock = [svc.clock()]
    svc.clock = lambda: clock[0]
    _submitted(svc)
    status = vendor.status

    def slow_status(vendor_task_id):
        if why == "half the lease spent":
            clock[0] += svc.settings.visibility_timeout_s * 0.51
        return status(vendor_task_id)

    vendor.status = slow_status
    vendor.statuses.append(VendorStatus(state, detail="oom" if state is VendorState.FAILED else ""))
    poll = message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1)
    parsed, move = handle(poll.dumps(), svc, join=lambda: why != "not asked")
    assert parsed == poll
    return move


@pytest.mark.parametrize("why", ["not asked", "half the lease spent"])
def test_collect_does_not_join_when_not_asked_or_the_lease_is_half_spent(svc, vendor, why):
    move = _poll_seeing(svc, vendor, VendorState.SUCCEEDED, why)
    assert isinstance(move, Continue) and move.delay_s == 0
    assert (move.message.stage, move.message.seq) == (Stage.COLLECT, 2)


@pytest.mark.parametrize("why", ["asked", "not asked", "half the lease spent"])
def test_a_finish_lets_report_join_its_hop_only_when_asked_and_with_half_the_lease_left(svc, vendor, why):
    move = _poll_seeing(svc, vendor, VendorState.FAILED, why)
    assert isinstance(move, Finish) and move.outcome.status is Status.FAILED
    assert move.report_joins is (why == "asked")


def test_a_finish_whose_report_joins_records_the_outcome_and_keeps_the_hop_and_its_message(svc, vendor):
    """The outcome is written keeping hop 1's lease; the same runner gets REPORT with the hop's seq, and the POLL
    message stays received (a crash redelivers it)."""
    _submitted(svc)
    vendor.statuses.append(VendorStatus(VendorState.FAILED, detail="oom"))
    svc.queue.send(message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1).dumps())
    [received] = svc.queue.receive(1, visibility_timeout_s=60)
    parsed, move = handle(received.body, svc, join=lambda: True)
    assert isinstance(move, Finish) and move.report_joins
    reporting, hop = apply(svc, received, parsed, move, in_place=True)
    assert (reporting.stage, reporting.seq) == (Stage.REPORT, 1) and hop.record.outcome.status is Status.FAILED
    record = svc.ledger.get("t1")
    assert record.outcome is not None and (record.seq, record.hop_seq) == (0, 1) and record.reported_at is None
    assert svc.queue.stats().in_flight == 1
    assert Stage.REPORT.value in (record.report_message or "")  # what the report sweep would resend


def test_a_failed_job_or_one_of_several_is_recorded_finished_at_once(svc, vendor):
    _submitted(svc)
    vendor.statuses.append(VendorStatus(VendorState.FAILED, detail="oom"))
    move = run(svc, message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1))
    assert isinstance(move, Finish) and svc.ledger.get("t1").vendor_done_at is not None


def test_a_collect_of_a_job_another_job_beat_is_dropped(svc, vendor):
    """The race the poll's record could not show: job 2 (a webhook's, polled by a hint) was recorded finished
    between job 1's poll and its hop end; job 1's COLLECT finds job 2 in use and drops, downloading nothing."""
    _submitted(svc)
    svc.ledger.note_webhook("t1", "19000000000000000002", svc.clock())
    assert svc.ledger.mark_vendor_done("t1", "19000000000000000002", svc.clock()).use == "19000000000000000002"
    late = message(Stage.POLL, vendor_task_id="19000000000000000001", seq=1)
    forward(svc, late, Continue(late.next(Stage.COLLECT, polls=1), vendor_done="19000000000000000001"))
    move = run(svc, late.next(Stage.COLLECT, polls=1))
    assert move == Drop("another vendor job of the task is used") and vendor.calls == []


def test_a_duplicate_of_a_hop_in_progress_is_deferred_not_run(svc, vendor):
    assert svc.ledger.begin_hop("t1", 0, 60, time.time()).state.value == "run"  # another runner has hop 0
    move = run(svc, message())
    assert isinstance(move, Defer) and move.message == message().replace(
        created_at=move.message.created_at, deadline_at=move.message.deadline_at
    )
    assert 55 < move.delay_s <= 61 and vendor.calls == []


def test_capacity_and_transient_errors_release_the_claim_and_retry_later(svc, vendor):
    vendor.submits.extend([VendorBusy("421 queue maxed", code=421), "19000000000000000002"])
    move = run(svc, message())
    assert isinstance(move, Continue) and move.message.stage is Stage.SUBMIT and move.message.attempt == 1
    assert move.delay_s >= 2
    move = run(svc, move.message)
    assert isinstance(move, Continue) and move.message.stage is Stage.POLL


def test_a_live_claim_of_another_worker_is_waited_for_not_doubled(svc, vendor):
    assert svc.ledger.claim_submit("t1", "someone-else", 120, 0, svc.clock()).state is ClaimState.ACQUIRED
    move = run(svc, message())
    assert isinstance(move, Continue) and move.message.stage is Stage.SUBMIT and 2 <= move.delay_s <= 30
    assert vendor.count("submit") == 0


def test_our_key_rejected_dead_letters_without_outcome(svc, vendor):
    vendor.submits.append(AuthError("802 key unauthorized", code=802))
    move = run(svc, message())
    assert isinstance(move, ToDeadLetter) and "802" in move.reason
    assert svc.ledger.get("t1").outcome is None


def test_submit_after_the_deadline_fails_with_timeout_without_calling_the_vendor(svc, vendor):
    move = run(svc, message(deadline_in_s=-1))
    assert isinstance(move, Finish)
    assert svc.ledger.get("t1").outcome.error_reason == "生成超时"
    assert vendor.calls == []


def test_poll_backs_off_with_jitter_and_never_past_the_deadline(svc, vendor):
    vendor.statuses.extend([VendorStatus(VendorState.RUNNING)] * 3 + [VendorStatus(VendorState.QUEUED)])
    policy = svc.pipelines.get("promo_poster").poll
    msg = message(Stage.POLL, vendor_task_id="v1", deadline_in_s=600)
    delays = []
    for _ in range(3):
        move = run(svc, msg)
        assert isinstance(move, Continue) and move.message.stage is Stage.POLL
        delays.append(move.delay_s)
        msg = move.message
    assert all(policy.base_s <= d <= policy.max_s for d in delays)
    near = message(Stage.POLL, task_id="t2", vendor_task_id="v1", deadline_in_s=1.5, polls=10)
    move = run(svc, near)
    assert move.delay_s <= 1.5 + 0.01


def test_poll_past_deadline_cancels_the_vendor_job_and_reports_timeout(svc, vendor):
    vendor.statuses.append(VendorStatus(VendorState.RUNNING))
    move = run(svc, message(Stage.POLL, vendor_task_id="v9", deadline_in_s=-1))
    assert isinstance(move, Finish)
    assert ("cancel", "v9") in vendor.calls
    assert svc.ledger.get("t1").outcome.error_reason == "生成超时"


def test_poll_transient_errors_are_bounded_by_the_deadline(svc, vendor):
    vendor.statuses.append(VendorUnavailable("connect refused"))
    move = run(svc, message(Stage.POLL, vendor_task_id="v1", deadline_in_s=-1))
    assert svc.ledger.get("t1").outcome.error_reason == "生成超时"
    assert isinstance(move, Finish)


def test_vendor_failure_and_lost_task_report_failed(svc, vendor):
    vendor.statuses.append(VendorStatus(VendorState.FAILED, detail="CUDA out of memory"))
    run(svc, message(Stage.POLL, vendor_task_id="v1"))
    outcome = svc.ledger.get("t1").outcome
    assert outcome.error_reason == "生成失败" and outcome.detail == "CUDA out of memory"
    vendor.statuses.append(VendorTaskFailed("807 task not found", code=807))
    run(svc, message(Stage.POLL, task_id="t2", vendor_task_id="v2"))
    assert svc.ledger.get("t2").outcome.error_reason == "生成失败"


def test_stale_and_finished_messages_are_acknowledged_and_dropped(svc, vendor):
    svc.ledger.advance("t1", 3, svc.clock())
    assert isinstance(run(svc, message(Stage.POLL, vendor_task_id="v1", seq=2)), Drop)
    svc.ledger.record_outcome("t1", Outcome(Status.DONE, ("output/u1/t1/poster_01.png",)), svc.clock())
    svc.ledger.mark_reported("t1", svc.clock())
    assert isinstance(run(svc, message(Stage.POLL, vendor_task_id="v1", seq=9)), Drop)
    assert vendor.calls == []


def test_a_redelivered_hop_of_a_finished_but_unreported_task_sends_the_report(svc, vendor):
    """A run that died after recording the outcome and before sending REPORT: the redelivery reports it."""
    done = Outcome(Status.DONE, ("output/u1/t1/poster_01.png",), vendor_task_id="v1")
    svc.ledger.record_outcome("t1", done, svc.clock())  # the dead run got this far
    decision = run(svc, message(Stage.AUDIT, vendor_task_id="v1", seq=4))
    assert decision == Finish(done) and vendor.calls == []
    [report] = svc.queue.receive(10, visibility_timeout_s=30)
    assert parse(report.body).stage is Stage.REPORT and parse(report.body).seq == 5


def test_report_reports_the_first_recorded_outcome_even_if_a_later_step_disagrees(svc):
    first = Outcome(Status.FAILED, error_reason="生成超时", vendor_task_id="v1")
    svc.ledger.record_outcome("t1", first, svc.clock())
    later = Outcome(Status.DONE, ("output/u1/t1/poster_01.png",), vendor_task_id="v1")
    svc.store.put_bytes(BUCKET, "output/u1/t1/poster_01.png", b"\x89PNG\r\n\x1a\n....")
    forward(svc, message(Stage.AUDIT, seq=4), Finish(later))
    [report] = svc.queue.receive(10, visibility_timeout_s=30)
    assert parse(report.body).stage is Stage.REPORT
    assert svc.ledger.get("t1").outcome == first
    run(svc, parse(report.body))  # the backend is unreachable here; the report step still cleans up first
    assert not svc.store.exists(BUCKET, "output/u1/t1/poster_01.png")  # a failed task keeps nothing in output/


def test_report_retries_an_unreachable_backend_then_dead_letters_when_attempts_run_out(svc):
    svc.ledger.record_outcome("t1", Outcome(Status.FAILED, error_reason="生成失败"), svc.clock())
    move = run(svc, message(Stage.REPORT, seq=5))
    assert isinstance(move, Continue) and move.message.stage is Stage.REPORT and move.message.attempt == 1
    last = message(Stage.REPORT, seq=6, attempt=svc.settings.report_max_attempts - 1)
    move = run(svc, last)
    assert isinstance(move, ToDeadLetter) and "gave up" in move.reason
    assert svc.ledger.get("t1").reported_at is None


def test_drain_gives_back_what_it_received_but_will_not_start(svc):
    from consumer.drain import Budget, drain

    for n in range(3):
        svc.queue.send(f"poison {n}")
    answers = iter([False, False, True])  # loop start, 1st message, then stop before the 2nd
    stats = drain(svc, Budget(None), stop=lambda: next(answers, True))
    assert stats.received == 1 and stats.dead_lettered == 1
    back = svc.queue.receive(10, visibility_timeout_s=30)  # no waiting out the visibility timeout
    assert len(back) == 2 and all(r.receive_count == 1 for r in back)


# -- every upload gets an answer; our faults stay ours; a task belongs to its user ------------------------------
def test_an_empty_input_fails_the_task_as_invalid_input(svc, vendor):
    svc.store.put_bytes(BUCKET, "input/u1/t1/original.jpg", b"")
    decision = run(svc, message())
    assert isinstance(decision, Finish) and decision.outcome.error_reason == "输入文件无效"
    assert vendor.calls == []


@pytest.mark.parametrize("stage", [Stage.SUBMIT, Stage.POLL, Stage.COLLECT, Stage.AUDIT])
def test_a_message_for_an_unknown_pipeline_is_dead_lettered_even_past_its_deadline(svc, vendor, stage):
    """A pipeline renamed in pipelines.toml while tasks wait: our fault, never 生成超时 or a crash loop."""
    msg = message(stage, pipeline="renamed_away", vendor_task_id="v1", deadline_in_s=-60)
    decision = run(svc, msg)
    assert isinstance(decision, ToDeadLetter) and "unknown pipeline 'renamed_away'" in decision.reason
    assert "redrive" in decision.reason and vendor.calls == [] and svc.ledger.get("t1").outcome is None


def test_a_poll_without_a_vendor_task_id_is_dead_lettered_at_once(svc, vendor):
    decision = run(svc, message(Stage.POLL))
    assert isinstance(decision, ToDeadLetter) and "without vendor_task_id" in decision.reason


def test_another_users_upload_under_a_known_task_id_is_refused_not_merged(svc, vendor):
    vendor.submits.append("19000000000000000009")
    assert isinstance(run(svc, message()), Continue)  # u1 owns t1
    before = svc.ledger.get("t1")
    for seq in (0, 1, 7):  # a stale-looking copy is refused too, not dropped in silence
        decision = run(svc, message(user_id="intruder", seq=seq))
        assert isinstance(decision, ToDeadLetter) and not decision.park
        assert "belongs to another user" in decision.reason and "intruder" in decision.reason
    after = svc.ledger.get("t1")
    assert (after.user_id, after.seq, after.hop_seq) == ("u1", before.seq, before.hop_seq)
    assert after.version == before.version  # nothing written for a foreign message
    assert vendor.count("submit") == 1


def test_a_job_found_ended_after_the_deadline_reports_the_timeout_not_a_vendor_failure(svc, vendor):
    """A run cancelled the job at the deadline and died before recording 生成超时: the redelivered poll sees the
    cancelled job as failed, and still reports the timeout."""
    vendor.statuses.append(VendorStatus(VendorState.FAILED, detail="task cancelled"))
    decision = run(svc, message(Stage.POLL, vendor_task_id="v1", deadline_in_s=-5))
    assert isinstance(decision, Finish) and decision.outcome.error_reason == "生成超时"


def test_a_hop_run_without_its_lease_is_never_forwarded_one_effect_at_a_time(svc):
    """Only a HopCommit may end an unleased hop: its successor must go with the write that raises the seq, which
    the send-then-record order cannot promise."""
    poll = message().next(Stage.POLL, vendor_task_id="19000000000000000001", polls=0)
    with pytest.raises(ValueError, match="HopCommit"):
        forward(svc, poll, Continue(poll.next(polls=1), 2.0, leased=False))
    assert svc.queue.stats().pending == 0 and svc.ledger.get("t1") is None
