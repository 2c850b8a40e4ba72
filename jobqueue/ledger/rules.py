"""The ledger's rules: one pure function per transition, the same for every backend.

Each takes the task's current record (``None``: not stored), the call's arguments and ``now``, and returns
``(new record, result)``; the new record is ``None`` when nothing changes, so a call that only reads never
writes. The version is left as it was: :class:`jobqueue.ledger.base.Ledger` stores the new record only if the
stored version is still the one the rule saw, else it runs the rule again on what is stored now. The contract
they implement is the module docstring of :mod:`jobqueue.ledger.base`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jobqueue.ledger.record import (
    Claim,
    ClaimState,
    Hop,
    HopState,
    RuntimeEstimate,
    Submission,
    SubmitState,
    TaskRecord,
    VendorDone,
    Webhook,
    WebhookState,
)
from relay_core.domain import Outcome

_HOLDING = (SubmitState.LEASED, SubmitState.SENDING)


def _changed(record: TaskRecord, now: float, **changes: Any) -> TaskRecord:
    return replace(record, **changes, updated_at=now)


def _holds(record: TaskRecord, token: str) -> bool:
    """``record``'s submit claim is held (leased or sending) by ``token``."""
    return record.submit_state in _HOLDING and record.token == token


# -- submit claim ------------------------------------------------------------------------------
def claim_submit(
    current: TaskRecord | None,
    task_id: str,
    token: str,
    lease_s: float,
    deadline_at: float,
    now: float,
    user_id: str | None = None,
) -> tuple[TaskRecord | None, Claim]:
    """The right to submit: see the contract's "Submit claim". The first known deadline and user are kept."""
    record = current or TaskRecord.blank(task_id, now)
    changes: dict[str, Any] = {}
    if record.deadline_at == 0 and deadline_at > 0:
        changes["deadline_at"] = deadline_at
    if record.user_id is None and user_id:
        changes["user_id"] = user_id
    state = record.submit_state
    if state is SubmitState.SUBMITTED:
        claim = Claim(ClaimState.SUBMITTED, vendor_task_id=record.vendor_task_id)
    elif state is SubmitState.LEASED and record.token != token and record.lease_until > now:
        claim = Claim(ClaimState.HELD, retry_after_s=record.lease_until - now)
    elif state is SubmitState.SENDING and record.lease_until > now:  # the holder may reach the vendor: wait
        claim = Claim(ClaimState.HELD, retry_after_s=record.lease_until - now)
    elif record.webhook_vendor_ids:  # a job of the task called back (ambiguous, holder dead, or operator reset)
        changes.update(_adoption(record, now))
        claim = Claim(ClaimState.SUBMITTED, vendor_task_id=changes["vendor_task_id"])
    elif state is SubmitState.AMBIGUOUS:
        claim = Claim(ClaimState.AMBIGUOUS)
    elif state is SubmitState.SENDING:  # its holder died mid-submit: never resubmit blindly
        changes.update(submit_state=SubmitState.AMBIGUOUS, lease_until=0.0)
        claim = Claim(ClaimState.AMBIGUOUS)
    else:  # no claim, a lapsed lease of a preparing holder, or the holder renewing its own lease
        changes.update(submit_state=SubmitState.LEASED, token=token, lease_until=now + lease_s)
        claim = Claim(ClaimState.ACQUIRED, token=token)
    return (_changed(record, now, **changes) if changes else None), claim


def _adoption(record: TaskRecord, now: float) -> dict[str, Any]:
    """The changes that make the first vendor job a webhook named the task's submission (its submit turned
    ambiguous: the create reached the vendor, its answer never reached us). ``submitted_at`` stays unknown, so
    the job's runtime does not feed the pipeline's estimate."""
    first, *others = record.webhook_vendor_ids
    return {
        "submit_state": SubmitState.SUBMITTED,
        "vendor_task_id": first,
        "webhook_vendor_ids": tuple(others),
        "lease_until": 0.0,
        "adopted_at": now,
    }


def mark_sending(
    current: TaskRecord | None, token: str, now: float, poll_message: str | None = None
) -> tuple[TaskRecord | None, bool]:
    """Leased to ``token`` → sending (the lease stays), keeping ``poll_message`` (the first POLL hop, without a
    vendor task id) for a webhook that names the job before its create answer is recorded; ``False`` and no
    change otherwise."""
    if current is None or current.submit_state is not SubmitState.LEASED or current.token != token:
        return None, False
    changes: dict[str, Any] = {"submit_state": SubmitState.SENDING}
    if poll_message is not None:
        changes["poll_message"] = poll_message
    return _changed(current, now, **changes), True


def record_submission(
    current: TaskRecord | None, token: str, vendor_task_id: str, now: float, poll_message: str | None = None
) -> tuple[TaskRecord | None, bool]:
    """Held by ``token`` → submitted with ``vendor_task_id`` (and the first POLL hop, for webhook hints);
    ``False`` and no change otherwise."""
    if current is None or not _holds(current, token):
        return None, False
    changed = _changed(
        current,
        now,
        submit_state=SubmitState.SUBMITTED,
        vendor_task_id=vendor_task_id,
        lease_until=0.0,
        submitted_at=now,
        poll_message=poll_message,
        webhook_vendor_ids=tuple(v for v in current.webhook_vendor_ids if v != vendor_task_id),
    )
    return changed, True


def mark_ambiguous(current: TaskRecord | None, token: str, now: float) -> tuple[TaskRecord | None, bool]:
    """Held by ``token`` → ambiguous: no claim succeeds until a webhook names the job (:func:`note_webhook`) or
    an operator resets it; ``False`` and no change otherwise. A webhook that already came (while the request
    was in flight) is adopted at once."""
    if current is None or not _holds(current, token):
        return None, False
    if current.webhook_vendor_ids:
        return _changed(current, now, **_adoption(current, now)), True
    return _changed(current, now, submit_state=SubmitState.AMBIGUOUS, lease_until=0.0), True


def release_submit(current: TaskRecord | None, token: str, now: float) -> tuple[TaskRecord | None, bool]:
    """Held by ``token`` → no claim (the vendor created nothing); ``False`` and no change otherwise."""
    if current is None or not _holds(current, token):
        return None, False
    return _changed(current, now, submit_state=SubmitState.NONE, token=None, lease_until=0.0), True


def reset_submit(current: TaskRecord | None, now: float) -> tuple[TaskRecord | None, bool]:
    """Operator: forget a leased, sending or ambiguous claim; a recorded submission is kept (``False``)."""
    if current is None or current.submit_state not in (*_HOLDING, SubmitState.AMBIGUOUS):
        return None, False
    return _changed(current, now, submit_state=SubmitState.NONE, token=None, lease_until=0.0), True


# -- hop order -----------------------------------------------------------------------------------
def advance(current: TaskRecord | None, task_id: str, seq: int, now: float) -> tuple[TaskRecord | None, bool]:
    """Raise the handled seq to ``seq``; ``True`` when it rose, never lowers it."""
    record = current or TaskRecord.blank(task_id, now)
    if seq <= record.seq:
        return None, False
    return _changed(record, now, seq=seq), True


def advance_unleased(current: TaskRecord | None, task_id: str, seq: int, now: float) -> tuple[TaskRecord | None, bool]:
    """:func:`advance` for the end of a hop run without its lease (see ``Ledger.peek_hop``): only while no runner
    has begun hop ``seq`` or a later one, whose lease makes it the one to end that hop; ``True`` when it rose."""
    if current is None or seq <= current.hop_seq:
        return None, False
    return advance(current, task_id, seq, now)


def advance_submitted(
    current: TaskRecord | None, task_id: str, seq: int, now: float, submission: Submission
) -> tuple[TaskRecord | None, bool]:
    """:func:`record_submission` then :func:`advance`, as one change; ``True`` when both happened (the claim was
    still the token's and the seq rose)."""
    record, recorded = record_submission(
        current, submission.token, submission.vendor_task_id, now, submission.poll_message
    )
    changed, rose = advance(record or current, task_id, seq, now)
    return changed or record, recorded and rose


def advance_vendor_done(
    current: TaskRecord | None, task_id: str, seq: int, now: float, vendor_task_id: str
) -> tuple[TaskRecord | None, bool]:
    """:func:`mark_vendor_done` then :func:`advance`, as one change; ``True`` when the seq rose."""
    record = mark_vendor_done(current, vendor_task_id, now)[0] or current
    changed, rose = advance(record, task_id, seq, now)
    return (changed or (record if record is not current else None)), rose


def begin_hop(
    current: TaskRecord | None,
    task_id: str,
    seq: int,
    lease_s: float,
    now: float,
    user_id: str | None = None,
    submit_token: str | None = None,
    deadline_at: float = 0.0,
) -> tuple[TaskRecord | None, Hop]:
    """Admit one runner per hop: FOREIGN (the task is another user's), STALE, BUSY (another live lease on
    ``seq``) or RUN (taking the lease; the first user to run a hop of a task owns it). ``submit_token``: a RUN of
    a task without an outcome, before ``deadline_at``, also runs :func:`claim_submit` with that token, the same
    lease and ``deadline_at``, in the same change (the answer's ``claim``)."""
    record = current or TaskRecord.blank(task_id, now)
    if user_id and record.user_id and record.user_id != user_id:
        return None, Hop(HopState.FOREIGN)
    if seq <= record.seq or seq < record.hop_seq:
        return None, Hop(HopState.STALE)
    if seq == record.hop_seq and record.hop_until > now:
        return None, Hop(HopState.BUSY, retry_after_s=record.hop_until - now)
    owner = record.user_id or user_id
    changes: dict[str, Any] = {"hop_seq": seq, "hop_until": now + lease_s, "parked_at": None, "user_id": owner}
    leased = _changed(record, now, **changes)
    if submit_token is None or record.outcome is not None or now >= deadline_at:
        return leased, Hop(HopState.RUN)
    claimed, claim = claim_submit(leased, task_id, submit_token, lease_s, deadline_at, now, owner)
    return claimed or leased, Hop(HopState.RUN, claim=claim)


def hand_on(
    current: TaskRecord | None,
    task_id: str,
    seq: int,
    lease_s: float,
    now: float,
    user_id: str | None = None,
    outcome: Outcome | None = None,
    report_message: str | None = None,
    vendor_done: str | None = None,
) -> tuple[TaskRecord | None, Hop]:
    """Hop ``seq`` hands its successor to its own runner: (``outcome``: :func:`record_outcome` first; ``vendor_done``:
    :func:`mark_vendor_done` of that vendor job first,) then :func:`advance` to ``seq`` and :func:`begin_hop` of
    ``seq + 1``, as one change. Only a ``RUN`` answer changes anything: any other answer leaves the record as it
    is, for the caller to end the hop the usual way."""
    record = current
    if vendor_done is not None:
        record = mark_vendor_done(record, vendor_done, now)[0] or record
    if outcome is not None:
        record = record_outcome(record, task_id, outcome, now, user_id, report_message)[0] or record
    record = advance(record, task_id, seq, now)[0] or record
    changed, hop = begin_hop(record, task_id, seq + 1, lease_s, now, user_id)
    return (changed, hop) if hop.state is HopState.RUN else (None, hop)


def end_hop(
    current: TaskRecord | None, task_id: str, seq: int, now: float, reported: bool
) -> tuple[TaskRecord | None, bool]:
    """Hop ``seq`` ends without a successor: (``reported``: :func:`mark_reported`,) then :func:`advance`, as one
    change; ``True`` when the seq rose."""
    record = (mark_reported(current, now)[0] or current) if reported else current
    changed, rose = advance(record, task_id, seq, now)
    return (changed or (record if record is not current else None)), rose


def finish_in_hop(
    current: TaskRecord | None,
    task_id: str,
    seq: int,
    now: float,
    outcome: Outcome,
    user_id: str | None = None,
    report_message: str | None = None,
    vendor_done: str | None = None,
) -> tuple[TaskRecord | None, Hop]:
    """Hop ``seq``'s runner reports the task itself, in the same hop: while the lease of hop ``seq`` is live and
    the hop not handled, (``vendor_done``: :func:`mark_vendor_done` first, then) :func:`record_outcome`, as one
    change, answering ``RUN``. Otherwise nothing changes: ``STALE`` (handled, or a later hop began) or ``BUSY``
    (the lease lapsed, so another runner may hold the hop), and the caller ends the hop the usual way."""
    if current is None or seq <= current.seq or current.hop_seq != seq:
        return None, Hop(HopState.STALE)
    if current.hop_until <= now:
        return None, Hop(HopState.BUSY)
    record = current
    if vendor_done is not None:
        record = mark_vendor_done(record, vendor_done, now)[0] or record
    record = record_outcome(record, task_id, outcome, now, user_id, report_message)[0] or record
    return (record if record is not current else None), Hop(HopState.RUN)


def release_hop(
    current: TaskRecord | None, seq: int, now: float, parked: bool = False
) -> tuple[TaskRecord | None, bool]:
    """Drop the lease of hop ``seq`` (not another hop's); ``parked``: the hop went to the dead-letter queue, so
    the task is parked until a hop of it runs again. ``False`` when nothing changed."""
    if current is None:
        return None, False
    changes: dict[str, Any] = {}
    if current.hop_seq == seq and current.hop_until != 0:
        changes["hop_until"] = 0.0
    if parked and current.parked_at is None:
        changes["parked_at"] = now
    if not changes:
        return None, False
    return _changed(current, now, **changes), True


# -- terminal outcome ----------------------------------------------------------------------------
def record_outcome(
    current: TaskRecord | None,
    task_id: str,
    outcome: Outcome,
    now: float,
    user_id: str | None = None,
    report_message: str | None = None,
) -> tuple[TaskRecord | None, Outcome]:
    """Store the first outcome (with the REPORT hop it owes); every call gets the stored one back."""
    record = current or TaskRecord.blank(task_id, now)
    if record.outcome is not None:
        return None, record.outcome
    changes: dict[str, Any] = {"outcome": outcome, "outcome_at": now, "report_message": report_message}
    if record.user_id is None and user_id:
        changes["user_id"] = user_id
    return _changed(record, now, **changes), outcome


def mark_reported(current: TaskRecord | None, now: float) -> tuple[TaskRecord | None, bool]:
    """Record the first acknowledgement of the report; ``False`` for an unknown task or a repeat."""
    if current is None or current.reported_at is not None:
        return None, False
    return _changed(current, now, reported_at=now), True


# -- vendor completion and webhooks ----------------------------------------------------------------
def mark_vendor_done(
    current: TaskRecord | None, vendor_task_id: str, now: float
) -> tuple[TaskRecord | None, VendorDone]:
    """A status query saw the task's vendor job ``vendor_task_id`` finished (succeeded or failed). The first job
    seen finished is the one the task uses: the first sighting keeps the time, and when the job is not the
    recorded one (a second job of the task, named by its webhook) it becomes the recorded one and the job it
    replaces is to be cancelled. ``took_s`` is the time since the recorded submission, on the first sighting
    of the job that was submitted (``None`` otherwise)."""
    if current is None:
        return None, VendorDone(None, vendor_task_id)
    if current.vendor_done_at is not None:
        if vendor_task_id != current.vendor_task_id and vendor_task_id not in current.webhook_vendor_ids:
            ids = (*current.webhook_vendor_ids, vendor_task_id)
            return _changed(current, now, webhook_vendor_ids=ids), VendorDone(None, current.vendor_task_id)
        return None, VendorDone(None, current.vendor_task_id)
    replaced = current.vendor_task_id
    if replaced is None or vendor_task_id == replaced:
        took = now - current.submitted_at if current.submitted_at is not None else None
        return _changed(current, now, vendor_done_at=now), VendorDone(took, vendor_task_id)
    changes: dict[str, Any] = {
        "vendor_task_id": vendor_task_id,
        "vendor_done_at": now,
        "webhook_vendor_ids": tuple(v for v in current.webhook_vendor_ids if v != vendor_task_id),
        "cancelled_vendor_ids": (*current.cancelled_vendor_ids, replaced),
        "submitted_at": None,
    }
    return _changed(current, now, **changes), VendorDone(None, vendor_task_id, cancel=(replaced,))


def note_webhook(current: TaskRecord | None, vendor_task_id: str, now: float) -> tuple[TaskRecord | None, Webhook]:
    """A webhook (its URL checked) names the task and, as a hint, ``vendor_task_id``: see the contract's
    "Webhooks". Every vendor id other than the recorded one is kept in ``webhook_vendor_ids``. A POLL hint is
    due, once per seq: for the recorded job (``HINT``); for the job an ambiguous submit created (``ADOPTED``:
    it becomes the task's submission); for another job while the recorded one is not seen finished
    (``OTHER_JOB``: the poll decides which finished first)."""
    if current is None:
        return None, Webhook(WebhookState.UNKNOWN)
    changes: dict[str, Any] = {"webhook_at": now}
    recorded = current.vendor_task_id
    if vendor_task_id != recorded and vendor_task_id not in current.webhook_vendor_ids:
        changes["webhook_vendor_ids"] = (*current.webhook_vendor_ids, vendor_task_id)
    if current.outcome is not None or current.vendor_done_at is not None:  # nothing to do: write only a new id
        state = WebhookState.FINISHED if vendor_task_id == recorded else WebhookState.OTHER_JOB
        return (_changed(current, now, **changes) if "webhook_vendor_ids" in changes else None), Webhook(state)
    if recorded is None:
        if current.submit_state is not SubmitState.AMBIGUOUS:  # a live submit may still record its answer
            return _changed(current, now, **changes), Webhook(WebhookState.NO_SUBMISSION)
        known = changes.get("webhook_vendor_ids", current.webhook_vendor_ids)
        changes.update(_adoption(replace(current, webhook_vendor_ids=known), now))
        state = WebhookState.ADOPTED
    elif vendor_task_id != recorded:
        state = WebhookState.OTHER_JOB
    else:
        state = WebhookState.HINT
    updated = _changed(current, now, **changes)
    if current.parked_at is not None:  # an operator decides (a redrive finds an adopted submission)
        return updated, Webhook(WebhookState.PARKED)
    if current.poll_message is None:
        return updated, Webhook(WebhookState.NO_MESSAGE)
    seq = max(current.seq, current.hop_seq) + 1
    if current.hinted_seq >= seq:
        return updated, Webhook(WebhookState.DUPLICATE, seq)
    ask = vendor_task_id if state is WebhookState.OTHER_JOB else updated.vendor_task_id
    return replace(updated, hinted_seq=seq), Webhook(state, seq, current.poll_message, ask)


# -- runtime estimates ---------------------------------------------------------------------------
#: a first poll that found the job finished lowers the estimate by this fraction (probing for a faster vendor)
ESTIMATE_DOWN = 0.05
#: a first poll too early moves the estimate this far toward the time the job was seen finished
ESTIMATE_UP = 0.3


def observe_runtime(
    current: RuntimeEstimate | None, pipeline: str, took_s: float, first_poll: bool, low_s: float, high_s: float
) -> RuntimeEstimate:
    """The estimate after a job was seen finished ``took_s`` after its submission, by its first status query
    (``first_poll``) or a later one; always within ``[low_s, high_s]``.

    ``took_s`` is an upper bound of the vendor's time (the job ended before it was seen), so an estimate that
    only averaged it would creep up and never come down: a first poll that found the job done lowers the
    estimate a little (it may be early enough), one that found it running raises it toward ``took_s``.
    """
    if current is None:
        value = took_s
    elif first_poll:
        value = min(current.estimate_s, took_s) * (1 - ESTIMATE_DOWN)
    else:
        value = current.estimate_s + ESTIMATE_UP * (took_s - current.estimate_s)
    bounded = min(max(value, low_s), high_s)
    samples = current.samples + 1 if current is not None else 1
    return RuntimeEstimate(pipeline, bounded, samples, current.version if current is not None else 0)
