"""The task ledger: the workers' own idempotency store, one record per task.

It makes at-least-once delivery safe: every step may run more than once, with the same effect. Contract
of every backend (``tests/contract/test_ledger_contract.py`` checks each one):

* **Submit claim.** ``claim_submit(task, token, lease_s, deadline_at)`` returns:
  ``ACQUIRED`` when no claim exists or the previous holder's lease expired while it was only preparing
  (uploading the input: the new holder takes over); ``HELD`` (with ``retry_after_s``) while another token's
  lease is live; ``SUBMITTED`` (with ``vendor_task_id``) once a submission is recorded; ``AMBIGUOUS`` once a
  submit was marked ambiguous, or when a holder's lease expired after ``mark_sending`` (it died while the
  request may have reached the vendor): never resubmit until an operator calls ``reset_submit``.
  ``mark_sending`` (just before the vendor call), ``record_submission`` and ``mark_ambiguous`` only succeed
  for the current token; ``release_submit`` gives up a claim (the vendor definitely created nothing) so a
  retry can claim again.
* **Hop order.** A record's ``seq`` is the highest ``seq`` whose successor was sent (``-1`` at first);
  ``advance(task, seq)`` raises it to ``seq`` (compare-and-set, never lowers it) and returns whether it rose.
  ``begin_hop(task, seq, lease_s)`` admits one runner per hop: ``STALE`` when ``seq`` is at most the handled
  seq or below a hop already begun; ``BUSY`` (with ``retry_after_s``) while another runner's lease on the same
  ``seq`` is live (a concurrent duplicate); else ``RUN``, taking the lease (given a ``submit_token``, the submit
  claim too, in the same write: ``Hop.claim``). A runner that died leaves a lease that expires, so the
  redelivered message runs again. ``release_hop(task, seq)`` drops the lease of a hop
  that ended without a successor (dead-lettered), so a redrive runs at once. ``hand_on_with`` (raise the seq,
  and take the lease of the next hop, for a runner that goes on with it) and ``end_with`` (report acknowledged and
  seq raised) make those changes as one write, through a ``commit`` that stores other state with it.
  ``finish_in_hop(task, seq, outcome)`` records the outcome (as ``record_outcome``) only while hop ``seq`` is
  leased and not handled, answering ``RUN``, so that its runner reports the task in the same hop.
  ``peek_hop(task, seq)`` answers as ``begin_hop`` would, writing nothing, for a hop that may run unleased (a
  status query that finds the job still running); such a hop ends with ``advance_with(..., unleased=True)``,
  which raises the seq only while no runner has begun hop ``seq`` or a later one.
* **Terminal outcome.** ``record_outcome(task, outcome)`` stores the first outcome and returns the stored
  one: later calls, whatever they pass, get the first back. That is how a task gets exactly one outcome.
  ``mark_reported(task)`` records that the backend acknowledged the report.
* **Stuck and unreported tasks.** ``open_tasks(deadline_before)`` lists tasks without an outcome whose
  deadline is before the given time, oldest deadline first; ``unreported(before)`` lists tasks whose outcome
  was recorded before the given time and not yet reported, oldest first. Both read an index, never every record.
* **Vendor jobs and webhooks.** ``by_vendor_task(vendor_task_id)`` finds the task whose recorded vendor task id
  it is, through an index (``None`` when none). ``mark_vendor_done(task, vendor_task_id, now)`` records that a
  status query saw a job of the task finished: the first job seen finished is the one the task uses (a second
  job, named only by its webhook, replaces a recorded one not yet finished, which is then to be cancelled and
  is kept in ``cancelled_vendor_ids``); it returns a ``VendorDone``. ``note_webhook(task, vendor_task_id,
  now)`` says what a webhook whose URL named the task should do (a vendor id other than the recorded one is
  kept in ``webhook_vendor_ids``): ``UNKNOWN`` (no record), ``FINISHED`` (seen finished, or an outcome; a
  different job's webhook then answers ``OTHER_JOB`` without a hint), ``NO_SUBMISSION`` (no vendor id recorded
  while a submit may still record it), ``PARKED`` (in the dead-letter queue), ``NO_MESSAGE`` (no POLL hop
  kept), ``DUPLICATE`` (a hint was sent for this seq), or a hint: the POLL hop to build it from, the seq (one
  above the highest handled or begun hop) and the vendor id to ask about, with ``HINT`` (the recorded job),
  ``ADOPTED`` (an ambiguous submit's job, now recorded) or ``OTHER_JOB`` (another job, while the recorded one
  is not seen finished).
* **Runtime estimates.** ``runtime_estimate(pipeline)`` reads a pipeline's estimate (``None`` before the first
  observation), as this object last read or wrote it when that was less than ``estimate_fresh_s`` ago (its own
  writes are seen at once, other writers' within that time); ``observe_runtime`` folds one observation in
  (compare-and-set, as a record); given the caller's ``now``, one that comes less than ``estimate_fresh_s`` after
  the last one this object folded for the pipeline is left out (the estimate follows the vendor once a second
  under load, not once per task).
* Records expire ``retention_s`` after their creation (SQLite, by ``prune``) or their last write (Redis TTL).

How: the rules live once, in :mod:`jobqueue.ledger.rules`. Every public write is load → rule →
compare-and-set on the record's ``version``, run again when another writer got in between. A backend only
provides the primitives below (``_load``, ``_save``, ``_open_by_deadline``, ``_unreported``, ``_by_vendor_task``,
``_prune``, ``_load_estimate``, ``_save_estimate``).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from jobqueue.errors import BackendUnavailable
from jobqueue.ledger import rules
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
from jobqueue.ledger.record_cache import RecordCache
from relay_core.domain import Outcome

__all__ = [
    "Claim",
    "ClaimState",
    "Hop",
    "HopState",
    "Ledger",
    "RuntimeEstimate",
    "SubmitState",
    "Submission",
    "TaskRecord",
    "VendorDone",
    "Webhook",
    "WebhookState",
]

DEFAULT_RETENTION_S = 30 * 86400
MAX_TRIES = 50  # compare-and-set attempts per call; each lost one means another write to the same task won
#: how long (monotonic s) a pipeline's runtime estimate, as last read or written here, answers ``runtime_estimate``:
#: every submit reads it, and one second of lag in a running estimate changes no first poll that matters
ESTIMATE_FRESH_S = 1.0
R = TypeVar("R")
#: a write made together with other state: ``(record to store or None for none, expected version) -> stored``
Commit = Callable[[TaskRecord | None, int], bool]


class Ledger(abc.ABC):
    """Base of every ledger backend; times are unix seconds, passed in so tests control the clock."""

    def __init__(self, *, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self.retention_s = retention_s
        self._record_cache: RecordCache | None = None
        self.estimate_fresh_s = ESTIMATE_FRESH_S
        self._estimates: dict[str, tuple[float, RuntimeEstimate | None]] = {}  # pipeline -> (monotonic, estimate)
        self._folded_at: dict[str, float] = {}  # pipeline -> the caller's time of this object's last fold

    # -- primitives: all a backend implements ----------------------------------------------------
    @abc.abstractmethod
    def _load(self, task_id: str) -> TaskRecord | None:
        """The stored record with its stored ``version``, ``None`` when there is none (or it expired).
        One read; raises ``BackendUnavailable``."""

    @abc.abstractmethod
    def _save(self, record: TaskRecord, expected_version: int) -> bool:
        """Store ``record`` (whose ``version`` is ``expected_version + 1``) if the stored version is still
        ``expected_version``; ``0`` means "insert: no record may exist". Returns ``False``, writing nothing,
        when another writer got there first. In the same atomic operation it keeps the indexes in step with
        the record: the open-tasks index by :meth:`TaskRecord.open_deadline`, the pending-report index by
        :meth:`TaskRecord.unreported_since` (``None``: not in that index) and the vendor-task index by
        :meth:`TaskRecord.vendor_key` (an entry, once written, may outlive a change: readers check the record).
        Raises ``BackendUnavailable``."""

    @abc.abstractmethod
    def _open_by_deadline(self, before: float, limit: int) -> list[TaskRecord]:
        """At most ``limit`` (> 0) records without an outcome whose ``deadline_at`` is > 0 and < ``before``,
        by deadline then task id, read through the open-tasks index (never a scan of every record)."""

    @abc.abstractmethod
    def _unreported(self, before: float, limit: int) -> list[TaskRecord]:
        """At most ``limit`` (> 0) records with an outcome and no ``reported_at`` whose outcome was recorded
        before ``before``, oldest first (then by task id), read through the pending-report index."""

    @abc.abstractmethod
    def _by_vendor_task(self, vendor_task_id: str) -> TaskRecord | None:
        """The record the vendor-task index names for ``vendor_task_id`` if its ``vendor_key()`` still is that
        id, else ``None`` (one index read and one record read, never a scan)."""

    @abc.abstractmethod
    def _load_estimate(self, pipeline: str) -> RuntimeEstimate | None:
        """The stored estimate of ``pipeline`` with its ``version``, ``None`` when there is none."""

    @abc.abstractmethod
    def _save_estimate(self, estimate: RuntimeEstimate, expected_version: int) -> bool:
        """Compare-and-set of an estimate, as :meth:`_save` for a record (``0``: insert)."""

    @abc.abstractmethod
    def _prune(self, before: float) -> int:
        """Drop what is older than ``before`` (records created before it, or stale index entries where the
        store expires records itself); returns how many were dropped."""

    # -- the record cache (optional) ---------------------------------------------------------------
    def use_record_cache(self, cache: RecordCache | None) -> None:
        """Let writes start from the record this object last read or wrote (``None``: always load first).

        Only ever optimistic (see :meth:`_apply`): a stale cached record never changes an answer, it costs one
        lost compare-and-set. Worth it where a load is a network round trip (Redis enables it by default)."""
        self._record_cache = cache

    def _seen(self, record: TaskRecord | None) -> TaskRecord | None:
        """Note ``record`` (just loaded or stored) in the record cache; returns it."""
        if record is not None and self._record_cache is not None:
            self._record_cache.put(record)
        return record

    def _cached(self, task_id: str) -> TaskRecord | None:
        return self._record_cache.get(task_id) if self._record_cache is not None else None

    # -- the one way every write goes ------------------------------------------------------------
    def _apply(
        self,
        task_id: str,
        rule: Callable[[TaskRecord | None], tuple[TaskRecord | None, R]],
        commit: Commit | None = None,
        *,
        likely_new: bool = False,
        usable: Callable[[TaskRecord], bool] | None = None,
    ) -> R:
        """Load → rule → compare-and-set, again on a lost race; ``BackendUnavailable`` after ``MAX_TRIES``.

        With a record cache the first try runs the rule on the cached record, if any, instead of loading: a change
        is safe (the compare-and-set on the cached version fails if the record moved on; the entry is then dropped
        and the next try loads), but an answer without a change is only returned once it was computed from a real
        load, since a stale record could give a wrong read-only answer. ``likely_new``: with a record cache and no
        entry, the first try guesses that no record exists (an insert, which fails if one does) instead of loading.
        ``usable``: a cached record it rejects is most likely stale, so the first try loads instead of losing a
        compare-and-set.

        ``commit`` (default: :meth:`_save`) writes a change as ``commit(record, expected_version)``, and is called
        once as ``commit(None, current_version)`` when the rule changes nothing: a backend that writes the record
        together with other state (see :meth:`advance_with`) does the rest then."""
        current = self._cached(task_id)
        if current is not None and usable is not None and not usable(current):
            current = None
        from_cache = current is not None or (likely_new and self._record_cache is not None)
        for _ in range(MAX_TRIES):
            if not from_cache:
                current = self._seen(self._load(task_id))
            changed, result = rule(current)
            expected = current.version if current is not None else 0
            if changed is None:
                if from_cache:
                    from_cache = False  # confirm on a real load
                    continue
                if commit is not None:
                    commit(None, expected)
                return result
            stored = replace(changed, version=expected + 1)
            if (commit or self._save)(stored, expected):
                self._seen(stored)
                return result
            if from_cache and self._record_cache is not None:
                self._record_cache.forget(task_id)
            from_cache = False
        raise BackendUnavailable(f"ledger: task {task_id!r} kept changing under {MAX_TRIES} tries; retry later")

    # -- submit claim ----------------------------------------------------------------------------
    def claim_submit(
        self, task_id: str, token: str, lease_s: float, deadline_at: float, now: float, user_id: str | None = None
    ) -> Claim:
        """Claim the right to submit ``task_id`` for ``lease_s`` (see the module's contract); a
        ``deadline_at`` > 0 and ``user_id`` are stored the first time they are known."""
        return self._apply(
            task_id, lambda cur: rules.claim_submit(cur, task_id, token, lease_s, deadline_at, now, user_id)
        )

    def mark_sending(self, task_id: str, token: str, now: float, *, poll_message: str | None = None) -> bool:
        """Just before the vendor call: ``True`` if ``token`` held a leased claim, now "sending". ``poll_message``
        (the first POLL hop, without a vendor task id) is kept for a webhook that names the job if its create
        answer is lost."""
        return self._apply(task_id, lambda cur: rules.mark_sending(cur, token, now, poll_message))

    def record_submission(
        self, task_id: str, token: str, vendor_task_id: str, now: float, *, poll_message: str | None = None
    ) -> bool:
        """``True`` if ``token`` held the claim and the submission is now recorded; ``poll_message`` is the first
        POLL hop (a JobMessage body), kept so a webhook hint can be built from it."""
        return self._apply(task_id, lambda cur: rules.record_submission(cur, token, vendor_task_id, now, poll_message))

    def mark_ambiguous(self, task_id: str, token: str, now: float) -> bool:
        """``True`` if ``token`` held the claim, now ambiguous: no claim succeeds until ``reset_submit``."""
        return self._apply(task_id, lambda cur: rules.mark_ambiguous(cur, token, now))

    def release_submit(self, task_id: str, token: str, now: float) -> bool:
        """``True`` if ``token`` held the claim and gave it up (the vendor created nothing)."""
        return self._apply(task_id, lambda cur: rules.release_submit(cur, token, now))

    def reset_submit(self, task_id: str, now: float) -> bool:
        """Operator action: forget an ambiguous or stale claim so the task may be submitted again; ``False``
        when there is none (a recorded submission is kept)."""
        return self._apply(task_id, lambda cur: rules.reset_submit(cur, now))

    # -- hop order -------------------------------------------------------------------------------
    def advance(self, task_id: str, seq: int, now: float) -> bool:
        """Raise the handled seq to ``seq``; ``True`` when it rose (it never lowers)."""
        return self._apply(task_id, lambda cur: rules.advance(cur, task_id, seq, now))

    def advance_with(
        self,
        task_id: str,
        seq: int,
        now: float,
        commit: Commit,
        *,
        submission: Submission | None = None,
        vendor_done: str | None = None,
        unleased: bool = False,
    ) -> bool:
        """:meth:`advance`, its write made by ``commit`` so that other state changes in the same atomic step:
        ``commit(record, expected_version)`` stores ``record`` by compare-and-set as :meth:`_save` does (and
        returns ``False``, having changed nothing at all, when the stored version differs); when nothing changes,
        ``commit(None, version)`` is called once to make the other changes alone. ``submission``: also
        :meth:`record_submission` in the same change (the end of the submit's hop); ``vendor_done``: also
        :meth:`mark_vendor_done` of that vendor job first (the end of the poll that saw it finished). Returns
        whether the seq rose (and, with a ``submission``, whether it was recorded too). ``unleased``: the hop ran
        without its lease (:meth:`peek_hop`), so the seq rises only while no runner has begun hop ``seq`` or a later
        one (:func:`rules.advance_unleased`); ``commit(None, version)`` must then change nothing but the received
        message: that runner, not this one, hands the task on."""
        if unleased:
            return self._apply(task_id, lambda cur: rules.advance_unleased(cur, task_id, seq, now), commit)
        if submission is not None:
            return self._apply(task_id, lambda cur: rules.advance_submitted(cur, task_id, seq, now, submission), commit)
        if vendor_done is not None:
            return self._apply(
                task_id, lambda cur: rules.advance_vendor_done(cur, task_id, seq, now, vendor_done), commit
            )
        return self._apply(task_id, lambda cur: rules.advance(cur, task_id, seq, now), commit)

    def hand_on_with(
        self,
        task_id: str,
        seq: int,
        lease_s: float,
        now: float,
        commit: Commit,
        *,
        user_id: str | None = None,
        outcome: Outcome | None = None,
        report_message: str | None = None,
        vendor_done: str | None = None,
    ) -> Hop:
        """Hop ``seq``'s runner keeps going with hop ``seq + 1`` (see :func:`rules.hand_on`): ``outcome`` recorded
        as :meth:`record_outcome` would (``vendor_done`` as :meth:`mark_vendor_done` would), the seq raised to
        ``seq`` and the lease of ``seq + 1`` taken, written by ``commit`` together with other state. Returns the hop
        of ``seq + 1`` as :meth:`begin_hop` answers it; only a ``RUN`` answer wrote anything (``commit(None,
        version)`` must then change nothing)."""

        def rule(current: TaskRecord | None) -> tuple[TaskRecord | None, Hop]:
            answer = rules.hand_on(current, task_id, seq, lease_s, now, user_id, outcome, report_message, vendor_done)
            return _with_record(current, *answer)

        return self._apply(task_id, rule, commit)

    def finish_in_hop(
        self,
        task_id: str,
        seq: int,
        outcome: Outcome,
        now: float,
        *,
        user_id: str | None = None,
        report_message: str | None = None,
        vendor_done: str | None = None,
    ) -> Hop:
        """Hop ``seq``'s runner goes on to report the task in the same hop (see :func:`rules.finish_in_hop`):
        ``outcome`` recorded as :meth:`record_outcome` would (``vendor_done`` as :meth:`mark_vendor_done` would), in
        one write, while the hop's lease is live and the hop not handled. Returns ``RUN`` with the record (its
        ``outcome`` the stored one, which the report must use); any other state wrote nothing."""

        def rule(current: TaskRecord | None) -> tuple[TaskRecord | None, Hop]:
            answer = rules.finish_in_hop(current, task_id, seq, now, outcome, user_id, report_message, vendor_done)
            return _with_record(current, *answer)

        return self._apply(task_id, rule)

    def end_with(self, task_id: str, seq: int, now: float, commit: Commit, *, reported: bool = False) -> bool:
        """:meth:`mark_reported` (when ``reported``) and :meth:`advance` as one change, written by ``commit`` as in
        :meth:`advance_with` (``commit(None, version)`` when nothing changes). Returns whether the seq rose."""
        return self._apply(task_id, lambda cur: rules.end_hop(cur, task_id, seq, now, reported), commit)

    def begin_hop(
        self,
        task_id: str,
        seq: int,
        lease_s: float,
        now: float,
        user_id: str | None = None,
        *,
        submit_token: str | None = None,
        deadline_at: float = 0.0,
    ) -> Hop:
        """Admit one runner for hop ``seq``: ``RUN`` (lease taken for ``lease_s``), ``BUSY`` or ``STALE``; and
        ``FOREIGN`` when the task belongs to a user other than ``user_id`` (the first user to run a hop of a task
        owns it; nothing is written for a foreign message). The answer carries the record it was decided on
        (``Hop.record``: for ``RUN`` the one stored with the lease), as fresh as a :meth:`get` just before.

        ``submit_token`` (a SUBMIT hop): a ``RUN`` of a task without an outcome, before ``deadline_at``, also makes
        :meth:`claim_submit` with that token, ``lease_s`` and ``deadline_at`` in the same write; ``Hop.claim`` is
        its answer (``None``: not made)."""

        def rule(current: TaskRecord | None) -> tuple[TaskRecord | None, Hop]:
            answer = rules.begin_hop(current, task_id, seq, lease_s, now, user_id, submit_token, deadline_at)
            return _with_record(current, *answer)

        # a task's first hop usually creates its record; a later one's record has seen the end of the hop before
        return self._apply(task_id, rule, likely_new=seq == 0, usable=lambda cached: _seen_hop_before(cached, seq))

    def peek_hop(self, task_id: str, seq: int, now: float, user_id: str | None = None) -> Hop:
        """What :meth:`begin_hop` would answer for hop ``seq`` now, writing nothing: no lease is taken. For a hop
        whose work may run twice at once unharmed (a status query), ended by :meth:`advance_with` with ``unleased``,
        so that of the runs of one hop only one, the first to end it, hands the task on. ``Hop.record`` is the
        record decided on (``None``: the task has none). A ``RUN`` may come from the record cache (a stale entry
        costs the hop's end one lost compare-and-set, then its rule runs on the stored record); any other answer
        comes from a real load."""
        cached = self._cached(task_id)
        if cached is not None and _seen_hop_before(cached, seq):
            hop = _peeked(cached, task_id, seq, now, user_id)
            if hop.state is HopState.RUN:
                return hop
        return _peeked(self._seen(self._load(task_id)), task_id, seq, now, user_id)

    def release_hop(self, task_id: str, seq: int, now: float, *, parked: bool = False) -> None:
        """Drop the lease of hop ``seq`` (it ended without a successor); no effect on another hop's lease.

        ``parked``: the hop went to the dead-letter queue; the task leaves the pending-report index until a hop
        of it runs again (:meth:`begin_hop` unparks it), so the report sweep leaves operators' tasks alone."""
        self._apply(task_id, lambda cur: rules.release_hop(cur, seq, now, parked))

    # -- terminal outcome ------------------------------------------------------------------------
    def record_outcome(
        self,
        task_id: str,
        outcome: Outcome,
        now: float,
        user_id: str | None = None,
        *,
        report_message: str | None = None,
    ) -> Outcome:
        """Store ``outcome`` unless one is stored; returns the stored one (the first always wins).

        ``report_message`` is the REPORT hop the outcome owes; :meth:`unreported` records carry it, so a report
        whose message was lost can be sent again."""
        return self._apply(
            task_id, lambda cur: rules.record_outcome(cur, task_id, outcome, now, user_id, report_message)
        )

    def mark_reported(self, task_id: str, now: float) -> None:
        """Record the first acknowledgement of the task's report (no effect for an unknown task)."""
        self._apply(task_id, lambda cur: rules.mark_reported(cur, now))

    # -- vendor jobs, webhooks and runtime estimates ----------------------------------------------
    def mark_vendor_done(self, task_id: str, vendor_task_id: str, now: float) -> VendorDone:
        """A status query saw the task's vendor job ``vendor_task_id`` finished: which job the task uses, which
        to cancel, and the seconds since the submission on its first sighting (see the contract)."""
        return self._apply(task_id, lambda cur: rules.mark_vendor_done(cur, vendor_task_id, now))

    def note_webhook(self, task_id: str, vendor_task_id: str, now: float) -> Webhook:
        """What a webhook naming ``task_id`` (and, as a hint, ``vendor_task_id``) should do; see the contract."""
        return self._apply(task_id, lambda cur: rules.note_webhook(cur, vendor_task_id, now))

    def by_vendor_task(self, vendor_task_id: str) -> TaskRecord | None:
        """The task whose recorded vendor task id is ``vendor_task_id``, ``None`` when there is none."""
        return self._by_vendor_task(vendor_task_id) if vendor_task_id else None

    def runtime_estimate(self, pipeline: str) -> RuntimeEstimate | None:
        """``pipeline``'s estimate of submission → finished, ``None`` before its first observation; read at most
        once per ``estimate_fresh_s`` (see the contract)."""
        seen = self._estimates.get(pipeline)
        if seen is not None and time.monotonic() - seen[0] < self.estimate_fresh_s:
            return seen[1]
        estimate = self._load_estimate(pipeline)
        self._estimates[pipeline] = (time.monotonic(), estimate)
        return estimate

    def observe_runtime(
        self,
        pipeline: str,
        took_s: float,
        *,
        first_poll: bool,
        low_s: float,
        high_s: float,
        now: float | None = None,
    ) -> RuntimeEstimate:
        """Fold one observation into ``pipeline``'s estimate (see :func:`rules.observe_runtime`); returns it.
        ``now``: the caller's time; an observation within ``estimate_fresh_s`` of this object's last fold of the
        pipeline is left out, and the estimate as this object knows it is returned (see the contract)."""
        if now is not None:
            last, known = self._folded_at.get(pipeline), self._estimates.get(pipeline, (0.0, None))[1]
            if last is not None and 0 <= now - last < self.estimate_fresh_s and known is not None:
                return known
            self._folded_at[pipeline] = now
        for _ in range(MAX_TRIES):
            current = self._load_estimate(pipeline)
            new = rules.observe_runtime(current, pipeline, took_s, first_poll, low_s, high_s)
            expected = current.version if current is not None else 0
            stored = replace(new, version=expected + 1)
            if self._save_estimate(stored, expected):
                self._estimates[pipeline] = (time.monotonic(), stored)
                return stored
        raise BackendUnavailable(f"ledger: estimate of {pipeline!r} kept changing under {MAX_TRIES} tries")

    # -- reading and upkeep ----------------------------------------------------------------------
    def get(self, task_id: str) -> TaskRecord | None:
        """The task's record, ``None`` for an unknown (or expired) task: always a real load, never the cache."""
        return self._seen(self._load(task_id))

    def open_tasks(self, deadline_before: float, limit: int = 100) -> list[TaskRecord]:
        """Tasks without an outcome whose known deadline is before ``deadline_before``, oldest first."""
        return self._open_by_deadline(deadline_before, limit) if limit > 0 else []

    def unreported(self, before: float, limit: int = 100) -> list[TaskRecord]:
        """Tasks whose outcome was recorded before ``before`` and whose report the backend has not
        acknowledged (no ``mark_reported``), oldest outcome first: the reports to send again."""
        return self._unreported(before, limit) if limit > 0 else []

    def prune(self, now: float) -> int:
        """Drop records created more than ``retention_s`` before ``now``; returns how many. Backends whose
        records expire by themselves drop only stale index entries here."""
        return self._prune(now - self.retention_s)

    def close(self) -> None:
        """Release connections; the default has none."""

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seen_hop_before(cached: TaskRecord, seq: int) -> bool:
    """Whether a cached record is worth starting hop ``seq`` from: it has seen the end of hop ``seq - 1``, which is
    what sent hop ``seq`` (bar a webhook's hint, sent sooner). One that has not is most likely stale: a load costs a
    read, a lost compare-and-set a write and its undo."""
    return cached.seq >= seq - 1


def _peeked(current: TaskRecord | None, task_id: str, seq: int, now: float, user_id: str | None) -> Hop:
    """:func:`rules.begin_hop`'s answer on ``current``, carrying ``current`` (nothing is written)."""
    return replace(rules.begin_hop(current, task_id, seq, 0.0, now, user_id)[1], record=current)


def _with_record(current: TaskRecord | None, changed: TaskRecord | None, hop: Hop) -> tuple[TaskRecord | None, Hop]:
    """A hop rule's answer carrying the record it was decided on: the change as it will be stored (next version),
    or the current record when nothing changes."""
    if changed is not None:
        changed = replace(changed, version=(current.version if current is not None else 0) + 1)
    return changed, replace(hop, record=changed if changed is not None else current)
