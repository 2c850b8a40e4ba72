"""The Auditor protocol: content moderation of results before they are published.

Fail closed: an auditor that cannot decide raises :class:`~moderation.errors.AuditError` (retryable, bounded by
the task's attempts and deadline); it never returns ``PASS`` on doubt. ``REVIEW`` is treated as a block unless
the deployment opts in (``RELAY_REVIEW_PASSES=1``).

Images are judged synchronously from bytes (at most ``max_image_bytes``; larger ones by ``audit_image_url``).
Videos are judged asynchronously from a private staging object: ``start_video`` returns a job id and
``video_result`` returns ``None`` while pending (with a retry hint via ``retry_after_s``).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass


class Verdict(str, enum.Enum):
    PASS = "pass"
    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True)
class AuditResult:
    verdict: Verdict
    label: str = ""
    score: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class AuditPending:
    retry_after_s: float = 10.0


class Auditor(abc.ABC):
    name: str = "auditor"
    max_image_bytes: int = 10 * 1024 * 1024

    @abc.abstractmethod
    def audit_image(self, data: bytes, data_id: str) -> AuditResult: ...

    @abc.abstractmethod
    def start_video(self, bucket: str, key: str, data_id: str) -> str: ...

    @abc.abstractmethod
    def video_result(self, job_id: str) -> AuditResult | AuditPending: ...

    def close(self) -> None:
        """Release connections."""
