"""A deterministic auditor for the demo and tests: content is forbidden when it carries the emulator's marker.

Any image or video whose bytes contain :data:`BLOCK_MARKER` (the bytes ``vendors.emulator.media`` can embed
in the files it makes) is blocked with label ``Marker``; everything else passes. Videos are scanned by
streaming the staged object from the store, so memory does not grow with the file. The decision is made in
``start_video`` and carried in the job id (``local:<verdict>:<data_id>``), so ``video_result`` needs no state
and never returns pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from moderation.base import Auditor, AuditPending, AuditResult, Verdict
from moderation.errors import AuditConfigError, AuditUnavailable
from objectstore.base import ObjectStore, iter_file
from relay_core.filetypes import BLOCK_MARKER

JOB_PREFIX = "local:"


def contains_marker(chunks: Iterable[bytes], marker: bytes = BLOCK_MARKER) -> bool:
    """Whether ``marker`` occurs in the concatenation of ``chunks`` (also across chunk boundaries)."""
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if marker in window:
            return True
        tail = window[-(len(marker) - 1) :] if len(marker) > 1 else b""
    return False


def _verdict_of(blocked: bool) -> AuditResult:
    if blocked:
        return AuditResult(Verdict.BLOCK, label="Marker", score=100, detail="the file carries the block marker")
    return AuditResult(Verdict.PASS, label="Normal", score=0)


class LocalMarkerAuditor(Auditor):
    name = "local"

    def __init__(self, store: ObjectStore, *, outage_file: str | None = None) -> None:
        self.store = store
        self.outage_file = Path(outage_file) if outage_file else None

    def _check_service(self) -> None:
        """A simulated outage (demo, chaos runs): fail closed while the outage file exists."""
        if self.outage_file is not None and self.outage_file.exists():
            raise AuditUnavailable("local moderation is down (outage file present)")

    def audit_image(self, data: bytes, data_id: str) -> AuditResult:
        self._check_service()
        return _verdict_of(BLOCK_MARKER in data)

    def start_video(self, bucket: str, key: str, data_id: str) -> str:
        self._check_service()
        with self.store.open_read(bucket, key) as stream:
            verdict = _verdict_of(contains_marker(iter_file(stream))).verdict
        # "|" separates job ids in a message (consumer.steps.audit): keep it out of ours.
        return f"{JOB_PREFIX}{verdict.value}:{data_id.replace('|', '_')}"

    def video_result(self, job_id: str) -> AuditResult | AuditPending:
        self._check_service()
        prefix, _, rest = job_id.partition(":")
        verdict_value, _, _data_id = rest.partition(":")
        if f"{prefix}:" != JOB_PREFIX or verdict_value not in (Verdict.PASS.value, Verdict.BLOCK.value):
            raise AuditConfigError(
                f"moderation job id {job_id[:80]!r} is not from the local auditor "
                "(was RELAY_AUDITOR changed while tasks were in flight?)"
            )
        return _verdict_of(verdict_value == Verdict.BLOCK.value)
