"""The Auditor protocol: content moderation of results before they are published.

Fail closed: an auditor that cannot decide raises :class:`~moderation.errors.AuditUnavailable` (a ``Transient``,
bounded by the stage's attempts); it never returns ``PASS`` on doubt. ``REVIEW`` is treated as a block unless
the deployment opts in (``RELAY_REVIEW_PASSES=1``).

Images are judged synchronously from bytes (at most ``max_image_bytes``; larger ones by URL where the auditor is a
:class:`UrlImageAuditor`). Videos are judged asynchronously from a private staging object: ``start_video`` returns
a job id and ``video_result`` returns :class:`AuditPending` (with a retry hint) until the verdict is in.
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
    """Every method may raise ``AuditUnavailable`` (retry), ``AuditConfigError`` or ``AuditRejected`` (dead-letter)."""

    name: str = "auditor"
    max_image_bytes: int = 10 * 1024 * 1024

    @abc.abstractmethod
    def audit_image(self, data: bytes, data_id: str) -> AuditResult:
        """Judge one image of at most ``max_image_bytes``; ``data_id`` (≤ 64 chars) names it in the service's logs."""

    @abc.abstractmethod
    def start_video(self, bucket: str, key: str, data_id: str) -> str:
        """Start judging the video object ``bucket/key``; returns a job id for :meth:`video_result`."""

    @abc.abstractmethod
    def video_result(self, job_id: str) -> AuditResult | AuditPending:
        """The verdict of a video job, or :class:`AuditPending` while it runs.

        Raises ``AuditJobFailed`` when the job ended without a verdict: asking again gets the same answer, the
        caller starts a new job."""

    def close(self) -> None:
        """Release connections."""


class UrlImageAuditor(Auditor):
    """An auditor that can also judge an image by URL (for images over ``max_image_bytes``)."""

    @abc.abstractmethod
    def audit_image_url(self, url: str, data_id: str) -> AuditResult:
        """Judge the image the service fetches from ``url`` (a presigned URL of our bucket)."""
