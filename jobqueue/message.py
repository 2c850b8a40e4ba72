"""The job message: one hop of one task through the state machine.

A message is compact (well under 4 KB), holds no secret and no vendor URL, and is versioned by ``v``.
:func:`parse` raises :class:`~jobqueue.errors.PoisonMessage` for anything that is not a valid message of a
known version: the consumer dead-letters those at once with the reason.

``seq`` counts hops: every successor carries ``seq + 1``. The ledger remembers the highest ``seq`` whose
successor was sent, so a duplicate or redelivered message with a lower ``seq`` is dropped.
"""

from __future__ import annotations

import enum
import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jobqueue.errors import PoisonMessage
from relay_core.ids import check_id

VERSION = 1
MAX_BODY_BYTES = 4096
#: a task takes at most a few hundred hops (bounded attempts per stage); far below 2**53, where Lua numbers
#: (doubles) stop counting exactly, so a hostile seq can neither crash-loop SQLite nor stall Redis
MAX_HOPS = 100_000


class Stage(str, enum.Enum):
    SUBMIT = "submit"  # input -> vendor, record vendor task id
    POLL = "poll"  # ask the vendor; wait by re-sending with a delay
    COLLECT = "collect"  # results -> staging, moderate (images inline, video starts an audit)
    AUDIT = "audit"  # poll an asynchronous (video) moderation job
    REPORT = "report"  # signed callback of the ledger's terminal outcome


class InputObject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=1, max_length=80)
    key: str = Field(min_length=1, max_length=850)
    etag: str = Field("", max_length=80)
    size: int = Field(ge=0)


class JobMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = VERSION
    task_id: str
    user_id: str
    pipeline: str = Field(min_length=1, max_length=64)
    stage: Stage
    input: InputObject
    vendor_task_id: str | None = Field(None, max_length=128)
    audit_job_id: str | None = Field(None, max_length=256)
    seq: int = Field(0, ge=0, le=MAX_HOPS)
    attempt: int = Field(0, ge=0, le=MAX_HOPS, description="attempts of the current stage, reset on stage change")
    polls: int = Field(0, ge=0, le=MAX_HOPS, description="vendor status queries so far")
    created_at: float = Field(allow_inf_nan=False)
    deadline_at: float = Field(allow_inf_nan=False, description="a NaN deadline would never pass: refused")
    not_before: float | None = Field(
        None, allow_inf_nan=False, description="set when a delay was split into queue-sized hops"
    )

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != VERSION:
            raise ValueError(f"unknown message version {v} (this worker reads v{VERSION})")
        return v

    @field_validator("task_id", "user_id")
    @classmethod
    def _safe_ids(cls, value: str) -> str:
        return check_id(value)

    def next(self, stage: Stage | None = None, **changes: object) -> JobMessage:
        """The successor hop: ``seq + 1``; ``attempt`` resets when the stage changes."""
        stage = stage or self.stage
        attempt = changes.pop("attempt", 0 if stage != self.stage else self.attempt)
        return self.model_copy(
            update={"seq": self.seq + 1, "stage": stage, "attempt": attempt, "not_before": None, **changes}
        )

    def dumps(self) -> str:
        body = self.model_dump_json(exclude_none=True)
        if len(body.encode()) > MAX_BODY_BYTES:  # pragma: no cover - ids and keys are length-capped
            raise ValueError(f"job message is {len(body)} bytes, over {MAX_BODY_BYTES}")
        return body


def parse(body: str | bytes) -> JobMessage:
    """Decode a queue body or raise :class:`PoisonMessage` with a short reason."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonMessage("body is not a JSON object")
    try:
        return JobMessage.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise PoisonMessage(f"invalid job message: {where}: {err['msg']}") from None


def task_of(body: str | bytes) -> str | None:
    """Best-effort task id of a body, even a poisoned one (for logs and the DLQ listing)."""
    try:
        data = json.loads(body)
        value = data.get("task_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) and len(value) <= 64 else None
    except (ValueError, UnicodeDecodeError):
        return None
