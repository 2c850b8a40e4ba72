"""Dead letters as operators see them: decoded, classified by reason, filtered, and found by id prefix."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import PoisonMessage
from jobqueue.message import JobMessage, parse, task_of
from jobqueue.queue.base import DeadLetter, DeadLetterStore
from scf_relay.operations.timefmt import utc

#: every letter a command considers (CMQ: each one looked at is received, so they are read once per command)
ALL = 100_000

#: (reason class, test on the lower-cased reason), first match wins; docs/runbook.md has a section for each
_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("poison", ("poison:",)),
    ("foreign task", ("belongs to another user",)),
    ("ambiguous submit", ("submit ambiguous",)),
    ("unknown pipeline", ("unknown pipeline",)),
    ("backend rejected report", ("backend rejected the report",)),
    ("report without outcome", ("report without a recorded outcome",)),
    ("crash loop", ("times without being deleted",)),
    ("moderation unavailable", ("auditunavailable", "auditjobfailed")),
    ("moderation configuration", ("auditor", "audit", "moderation")),
    ("attempts exhausted", ("gave up after",)),
    ("vendor rejected our configuration", ("runninghub", "vendor", "upload limit")),
)


def reason_class(reason: str) -> str:
    """The class of a dead-letter reason (``poison``, ``ambiguous submit``, ...; ``other`` when none fits)."""
    low = reason.lower()
    for name, needles in _CLASSES:
        if any(n in low for n in needles):
            return name
    return "other"


@dataclass(frozen=True)
class LetterView:
    """One dead letter with what its body says (``message`` is None for a poison body)."""

    letter: DeadLetter
    message: JobMessage | None
    problem: str | None  # why the body does not parse

    @classmethod
    def of(cls, letter: DeadLetter) -> LetterView:
        try:
            return cls(letter, parse(letter.body), None)
        except PoisonMessage as exc:
            return cls(letter, None, str(exc))

    @property
    def message_id(self) -> str:
        return self.letter.message_id

    @property
    def task_id(self) -> str | None:
        return self.message.task_id if self.message else task_of(self.letter.body)

    @property
    def stage(self) -> str | None:
        if self.message:
            return self.message.stage.value
        return _field(self.letter.body, "stage")

    @property
    def pipeline(self) -> str | None:
        return self.message.pipeline if self.message else _field(self.letter.body, "pipeline")

    @property
    def user_id(self) -> str | None:
        return self.message.user_id if self.message else _field(self.letter.body, "user_id")

    @property
    def reason_class(self) -> str:
        return reason_class(self.letter.reason)

    def to_json(self, now: float) -> dict[str, Any]:
        """The stable JSON form of a letter (docs/runbook.md, "JSON output")."""
        d = self.letter
        return {
            "message_id": d.message_id,
            "task_id": self.task_id,
            "user_id": self.user_id,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "reason": d.reason,
            "reason_class": self.reason_class,
            "dead_at": d.dead_at,
            "dead_at_utc": utc(d.dead_at),
            "age_s": round(now - d.dead_at, 1),
            "receive_count": d.receive_count,
        }


def _field(body: str, name: str) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Filters:
    """What ``--reason --stage --pipeline --user --task --older-than --since`` select; empty selects all."""

    reason: str | None = None  # a substring of the reason or of its class, any case
    stage: str | None = None
    pipeline: str | None = None
    user: str | None = None
    task: str | None = None  # a task id or a prefix of one
    dead_before: float | None = None  # from --older-than
    dead_after: float | None = None  # from --since

    @property
    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())

    def matches(self, view: LetterView) -> bool:
        """Whether ``view`` passes every filter given."""
        d = view.letter
        reason = self.reason.lower() if self.reason else None
        checks = (
            reason is None or reason in d.reason.lower() or reason in view.reason_class,
            self.stage is None or view.stage == self.stage,
            self.pipeline is None or view.pipeline == self.pipeline,
            self.user is None or view.user_id == self.user,
            self.task is None or (view.task_id or "").startswith(self.task),
            self.dead_before is None or d.dead_at < self.dead_before,
            self.dead_after is None or d.dead_at >= self.dead_after,
        )
        return all(checks)


def read_all(dead: DeadLetterStore) -> list[LetterView]:
    """Every dead letter, decoded, oldest first (one look at the store)."""
    return [LetterView.of(d) for d in dead.dead_letters(limit=ALL)]


def select(views: Iterable[LetterView], filters: Filters) -> list[LetterView]:
    return [v for v in views if filters.matches(v)]


class IdProblem(LookupError):
    """An id that names no letter, or a prefix that names more than one."""


def resolve(ids: Sequence[str], views: Sequence[LetterView]) -> list[LetterView]:
    """The letters named by ``ids`` (full ids or unique prefixes), each once, in the order given.

    Raises :class:`IdProblem` listing every unknown id and every ambiguous prefix (with the ids it matches)."""
    by_id = {v.message_id: v for v in views}
    found: dict[str, LetterView] = {}
    problems: list[str] = []
    for given in ids:
        if given in by_id:
            found.setdefault(given, by_id[given])
            continue
        matches = [v for v in views if v.message_id.startswith(given)]
        if len(matches) == 1:
            found.setdefault(matches[0].message_id, matches[0])
        elif not matches:
            problems.append(f"no dead letter {given}")
        else:
            shown = ", ".join(v.message_id for v in matches[:4]) + (", ..." if len(matches) > 4 else "")
            problems.append(f"id prefix {given} is ambiguous ({len(matches)} letters: {shown}); give more of it")
    if problems:
        raise IdProblem("; ".join(problems))
    return list(found.values())


def short_ids(ids: Sequence[str], minimum: int = 8) -> dict[str, str]:
    """The shortest prefix (at least ``minimum`` characters) that tells each id apart from the others."""
    ordered = sorted(set(ids))
    out: dict[str, str] = {}
    for k, i in enumerate(ordered):
        shared = max((_common(i, ordered[j]) for j in (k - 1, k + 1) if 0 <= j < len(ordered)), default=0)
        out[i] = i[: max(minimum, shared + 1)]
    return out


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
