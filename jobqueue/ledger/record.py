"""The ledger's types: one typed record per task, its states, the answers of a claim and of a hop.

A :class:`TaskRecord` is what every backend stores, serialised by :meth:`TaskRecord.to_json` (the only
place that knows the stored form) beside its ``version``. The two index keys a backend keeps in step with
the record (:meth:`TaskRecord.open_deadline`, :meth:`TaskRecord.unreported_since`) are derived here too, so
SQLite and Redis index exactly the same tasks.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from relay_core.domain import Outcome


class SubmitState(str, enum.Enum):
    """Where the task's single vendor submission stands."""

    NONE = ""  # no claim: anyone may claim
    LEASED = "leased"  # a worker holds the claim while preparing (uploading the input); nothing sent yet
    SENDING = "sending"  # the holder is calling the vendor: the request may reach it
    SUBMITTED = "submitted"  # the vendor task id is recorded
    AMBIGUOUS = "ambiguous"  # a request may have reached the vendor without an id: never resubmit blindly


class ClaimState(str, enum.Enum):
    ACQUIRED = "acquired"
    HELD = "held"
    SUBMITTED = "submitted"
    AMBIGUOUS = "ambiguous"


class HopState(str, enum.Enum):
    RUN = "run"
    STALE = "stale"
    BUSY = "busy"
    FOREIGN = "foreign"  # the task belongs to another user: this message must not touch it


class WebhookState(str, enum.Enum):
    UNKNOWN = "unknown"  # no record of the task (never ours, or pruned)
    FINISHED = "finished"  # the vendor job was already seen finished, or the task has its outcome
    PARKED = "parked"  # a hop of the task waits in the dead-letter queue: an operator decides, not a webhook
    NO_SUBMISSION = "no_submission"  # no vendor task id recorded while a submit may still record one (sending)
    ADOPTED = "adopted"  # the task's submit was ambiguous: this webhook's vendor task is now its submission
    OTHER_JOB = "other_job"  # the webhook names a vendor task other than the recorded one
    NO_MESSAGE = "no_message"  # submitted by a version that kept no POLL hop: polling finds it
    DUPLICATE = "duplicate"  # a hint for this seq was already sent
    HINT = "hint"  # send a POLL hint at ``seq``, built from ``poll_message``


@dataclass(frozen=True)
class Webhook:
    """What a webhook should do. A POLL hint is due when ``poll_message`` is set: that hop at ``seq``, asking
    about ``vendor_task_id``."""

    state: WebhookState
    seq: int = -1
    poll_message: str | None = None
    vendor_task_id: str | None = None


@dataclass(frozen=True)
class VendorDone:
    """A status query saw a vendor job of the task finished: see :func:`jobqueue.ledger.rules.mark_vendor_done`.

    ``took_s``: seconds from the submission to this first sighting (``None`` on a repeat, or when unknown);
    ``use``: the task's job whose results count (the first seen finished); ``cancel``: jobs to cancel now (a
    job the task was waiting on, superseded by another that finished first)."""

    took_s: float | None
    use: str | None
    cancel: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """The answer of ``claim_submit``; ``token``: the claim's holder, when ``ACQUIRED``."""

    state: ClaimState
    vendor_task_id: str | None = None
    retry_after_s: float = 0.0
    token: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Hop:
    """The answer of ``begin_hop``. ``record``: the task's record as the answer saw it (for ``RUN``, as stored with
    the lease), so the runner need not read it again; ``None`` for a task without one. ``claim``: the submit claim
    taken with the lease, when asked for and taken (see ``Ledger.begin_hop``)."""

    state: HopState
    retry_after_s: float = 0.0
    record: TaskRecord | None = field(default=None, compare=False)
    claim: Claim | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Submission:
    """A vendor job a submit created, to record with the end of the submit's hop (see ``Ledger.advance_with``):
    ``token`` holds the claim, ``poll_message`` is the first POLL hop (kept for webhook hints)."""

    token: str
    vendor_task_id: str
    poll_message: str


@dataclass(frozen=True)
class TaskRecord:
    """Everything the ledger knows about one task. Times are unix seconds; ``version`` counts stored writes
    (0: never stored) and is what a backend compares before it writes."""

    task_id: str
    version: int = 0
    submit_state: SubmitState = SubmitState.NONE
    token: str | None = None  # the holder of the submit claim
    lease_until: float = 0.0  # the submit claim's lease
    vendor_task_id: str | None = None
    deadline_at: float = 0.0  # the first known deadline; 0 = unknown
    seq: int = -1  # highest hop whose successor was sent
    hop_seq: int = -1  # highest hop begun
    hop_until: float = 0.0  # the lease of that hop's runner
    outcome: Outcome | None = None
    outcome_at: float | None = None  # when the outcome was recorded
    reported_at: float | None = None  # when the backend acknowledged the report
    user_id: str | None = None  # the uploader, once known
    report_message: str | None = None  # the REPORT hop the outcome owes (a JobMessage body), for the sweep
    parked_at: float | None = None  # a hop of the task sits in the dead-letter queue (an operator decides)
    submitted_at: float | None = None  # when the vendor task id was recorded
    poll_message: str | None = None  # the first POLL hop (a JobMessage body): what a webhook hint is built from
    vendor_done_at: float | None = None  # when a status query first saw the vendor job finished
    hinted_seq: int = -1  # the seq of the last webhook hint sent (a repeat for the same seq is not sent again)
    webhook_at: float | None = None  # when a webhook for the task last arrived
    webhook_vendor_ids: tuple[str, ...] = ()  # vendor task ids named by webhooks other than ``vendor_task_id``
    adopted_at: float | None = None  # when an ambiguous submit's vendor task id was learned from its webhook
    cancelled_vendor_ids: tuple[str, ...] = ()  # jobs of the task cancelled because another one finished first
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def blank(cls, task_id: str, now: float) -> TaskRecord:
        """A record not stored yet, as a first write creates it."""
        return cls(task_id=task_id, created_at=now, updated_at=now)

    def open_deadline(self) -> float | None:
        """Score in the open-tasks index: the deadline of a task without an outcome, ``None`` = not indexed."""
        return self.deadline_at if self.outcome is None and self.deadline_at > 0 else None

    def unreported_since(self) -> float | None:
        """Score in the pending-report index: when the outcome of a task not yet reported was recorded. A task
        parked in the dead-letter queue is left out: its report waits for an operator, not for the sweep."""
        if self.outcome is None or self.reported_at is not None or self.parked_at is not None:
            return None
        return self.outcome_at

    def vendor_key(self) -> str | None:
        """Key in the vendor-task index (vendor task id → task id): the recorded vendor task id, if any."""
        return self.vendor_task_id or None

    def to_json(self) -> str:
        """The stored form of everything but ``version`` (backends keep that beside it, to compare)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS if name != "version"}
        data["submit_state"] = self.submit_state.value
        data["outcome"] = self.outcome.to_dict() if self.outcome is not None else None
        return _ENCODER.encode(data)

    @classmethod
    def from_json(cls, raw: str | bytes, version: int) -> TaskRecord:
        """Inverse of :meth:`to_json`; fields missing from ``raw`` take their defaults."""
        data = {name: value for name, value in json.loads(raw).items() if name in _FIELDS}
        data["version"] = version
        data["submit_state"] = SubmitState(data.get("submit_state", ""))
        outcome = data.get("outcome")
        data["outcome"] = Outcome.from_dict(outcome) if outcome is not None else None
        data["webhook_vendor_ids"] = tuple(data.get("webhook_vendor_ids", ()))
        data["cancelled_vendor_ids"] = tuple(data.get("cancelled_vendor_ids", ()))
        return cls(**data)


@dataclass(frozen=True)
class RuntimeEstimate:
    """A pipeline's running estimate of how long its vendor jobs take from submission to finished (seconds),
    and how many observations built it. Stored beside the task records; ``version`` as for a record."""

    pipeline: str
    estimate_s: float
    samples: int = 0
    version: int = 0

    def to_json(self) -> str:
        return json.dumps({"estimate_s": self.estimate_s, "samples": self.samples}, separators=(",", ":"))

    @classmethod
    def from_json(cls, pipeline: str, raw: str | bytes, version: int) -> RuntimeEstimate:
        data = json.loads(raw)
        return cls(pipeline, float(data["estimate_s"]), int(data.get("samples", 0)), version)


_FIELDS = tuple(TaskRecord.__dataclass_fields__)
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
