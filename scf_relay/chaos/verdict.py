"""The verdict of a chaos run, recomputed from what the outside world saw — never from our own ledger.

Evidence: the reports the backend accepted (signature verified), the vendor's record of submissions (each upload
names its task by the ``chaos:<id>`` tag in its bytes), the bucket's ``output/`` and ``staging/`` listings, and the
dead-letter queue. Breaches (any one fails the run):

``lost``                 a task with neither a report nor a dead letter
``conflicting``          a task with two different report bodies
``double_submitted``     a task the vendor saw submitted more than once
``blocked_published``    a file under ``output/`` that carries the moderation marker
``failed_with_files``    a task reported ``failed`` (or not reported) with files under ``output/``
``done_mismatch``        a ``done`` report whose ``resultUrls`` are not exactly the task's files under ``output/``
``impossible_done``      ``done`` for a task that could not succeed (blocked, not an image, vendor-failed, never
                         finishing)
``staging_left``         anything left under ``staging/``
``ambiguous_despite_webhook``  a task dead-lettered as an ambiguous submit although its vendor job called the
                         webhook (with webhooks on, that call must have resolved it)
``unread_vendor_job``    a reported task with a vendor job we never asked about (status, outputs or cancel): a
                         billed job whose result nobody read

``ambiguous`` splits the tasks dead-lettered as ambiguous submits by what the vendor knew: a job that called the
webhook (a breach), a job that never did (it never ended, or its webhook was lost), no job at all (the request
never created one: only an operator can tell).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scf_relay.chaos.plan import Kind, PlannedTask

BREACHES = (
    "lost",
    "conflicting",
    "double_submitted",
    "blocked_published",
    "failed_with_files",
    "done_mismatch",
    "impossible_done",
    "staging_left",
    "ambiguous_despite_webhook",
    "unread_vendor_job",
)


@dataclass(frozen=True)
class VendorJob:
    """One vendor job as the vendor saw it: did its webhook get a 2xx, did we ever ask about it, was it refused
    in the create's own answer (node errors: nothing to read)."""

    vendor_task_id: str
    called_back: bool
    asked: bool
    refused_at_create: bool = False


@dataclass
class Evidence:
    #: task id -> report bodies (JSON) the backend accepted, in arrival order (repeats included)
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: task id -> vendor submissions naming it
    submissions: dict[str, int] = field(default_factory=dict)
    #: task id -> {file name under output/{user}/{task}/: whether its bytes carry the moderation marker}
    outputs: dict[str, dict[str, bool]] = field(default_factory=dict)
    #: keys under staging/
    staging: list[str] = field(default_factory=list)
    #: task id (None: a poison body) -> dead-letter reasons
    dead_letters: dict[str | None, list[str]] = field(default_factory=dict)
    #: task id -> the vendor jobs naming it
    vendor_jobs: dict[str, list[VendorJob]] = field(default_factory=dict)


@dataclass
class Verdict:
    breaches: dict[str, list[str]]
    reports_by_status: dict[str, int]
    dead_letters_by_reason: dict[str, int]
    unexpected_outcomes: dict[str, int]
    repeated_reports: int
    ambiguous: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.breaches.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "breaches": {name: len(ids) for name, ids in self.breaches.items()},
            "breach_examples": {name: ids[:5] for name, ids in self.breaches.items() if ids},
            "reports_by_status": self.reports_by_status,
            "dead_letters_by_reason": self.dead_letters_by_reason,
            "unexpected_outcomes": self.unexpected_outcomes,
            "repeated_reports": self.repeated_reports,
            "ambiguous": self.ambiguous,
        }


def reason_class(reason: str) -> str:
    """A short class of a dead-letter reason, for counting (``submit ambiguous``, ``received N times``, ...)."""
    text = reason.lower()
    for needle, name in (
        ("ambiguous", "submit ambiguous"),
        ("received", "received too often (worker crashes)"),
        ("gave up after", "stage attempts exhausted"),
        ("poison", "poison message"),
        ("rejected our configuration", "vendor rejected our configuration"),
        ("backend rejected", "backend rejected the report"),
    ):
        if needle in text:
            return name
    return reason.split(":", 1)[0][:60]


def judge(plan: list[PlannedTask], evidence: Evidence) -> Verdict:
    breaches: dict[str, list[str]] = {name: [] for name in BREACHES}
    statuses: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    repeated = 0
    ambiguous: Counter[str] = Counter({"job_called_back": 0, "job_never_called_back": 0, "no_job": 0})
    for task in plan:
        jobs = evidence.vendor_jobs.get(task.task_id, [])
        if any(reason_class(r) == "submit ambiguous" for r in evidence.dead_letters.get(task.task_id, [])):
            if any(job.called_back for job in jobs):
                ambiguous["job_called_back"] += 1
                breaches["ambiguous_despite_webhook"].append(task.task_id)
            else:
                ambiguous["job_never_called_back" if jobs else "no_job"] += 1
        reports = evidence.reports.get(task.task_id, [])
        distinct = {_canonical(body) for body in reports}
        files = evidence.outputs.get(task.task_id, {})
        repeated += max(0, len(reports) - len(distinct))
        if not reports and not evidence.dead_letters.get(task.task_id):
            breaches["lost"].append(task.task_id)
        if len(distinct) > 1:
            breaches["conflicting"].append(task.task_id)
        if evidence.submissions.get(task.task_id, 0) > 1:
            breaches["double_submitted"].append(task.task_id)
        if any(files.values()):
            breaches["blocked_published"].append(task.task_id)
        body = reports[0] if reports else None
        status = body.get("status") if body else None
        if status != "done" and files:
            breaches["failed_with_files"].append(task.task_id)
        if body is None:
            continue
        if any(not job.asked and not job.refused_at_create for job in jobs):
            breaches["unread_vendor_job"].append(task.task_id)
        statuses[f"{status} {body.get('errorReason') or ''}".strip()] += 1
        if status == "done":
            expected_urls = sorted(f"cos://output/{task.user_id}/{task.task_id}/{name}" for name in files)
            if sorted(body.get("resultUrls") or []) != expected_urls or not files:
                breaches["done_mismatch"].append(task.task_id)
            if task.kind is not Kind.OK:
                breaches["impossible_done"].append(task.task_id)
        if (status, body.get("errorReason")) != task.expected:
            unexpected[f"{task.kind.value} -> {status} {body.get('errorReason') or ''}".strip()] += 1
    breaches["staging_left"] = list(evidence.staging)
    reasons: Counter[str] = Counter(  # tasks per reason class (a task's duplicates may dead-letter more than once)
        name
        for letters in evidence.dead_letters.values()
        for name in {reason_class(reason) for reason in letters}
    )
    return Verdict(breaches, dict(statuses), dict(reasons), dict(unexpected), repeated, dict(ambiguous))


def _canonical(body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in body.items()))
