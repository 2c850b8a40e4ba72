"""Accepted uploads → first-hop :class:`JobMessage` s: pick the pipeline, enforce its input limits.

The pipeline of an upload is, in order: its ``x-cos-meta-pipeline`` metadata, else the longest key prefix
among the pipelines file's ``[routes]`` and ``RELAY_ROUTES`` (which wins on an equal prefix), else
``RELAY_DEFAULT_PIPELINE``. Every upload that names a user and a task is enqueued, so it gets an answer: an
empty, oversized or mistyped input is reported ``failed 输入文件无效`` by SUBMIT, and a metadata name no pipeline
has (the uploading client and ``pipelines.toml`` disagree: our side) is dead-lettered by the consumer with what
to fix, so a redrive after the fix saves the task. Such a message carries the default pipeline's deadline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from jobqueue.message import InputObject, JobMessage, Stage
from producer_shim.events import ParsedRecord, ParseResult, Rejected
from relay_core.errors import ConfigError
from relay_core.field_checks import FieldError
from relay_core.pipelines import Pipeline, PipelineFile, load_pipelines
from relay_core.settings import RelaySettings

_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class PipelineRouter:
    """Picks each upload's pipeline (the order: the module docstring)."""

    def __init__(self, pipelines: PipelineFile, routes: dict[str, str], default: str) -> None:
        self.pipelines = pipelines
        self.routes = routes  # key prefix -> pipeline name
        self.default = default

    @classmethod
    def from_settings(cls, settings: RelaySettings) -> PipelineRouter:
        """Load the pipelines file and check every route and the default name a known pipeline."""
        pipelines = load_pipelines(settings.pipelines)
        env_routes = settings.route_table()
        for prefix, name in env_routes.items():
            if name not in pipelines.pipelines:
                raise ConfigError(f"RELAY_ROUTES: {prefix!r} routes to unknown pipeline {name!r}")
        if settings.default_pipeline not in pipelines.pipelines:
            known = ", ".join(sorted(pipelines.pipelines))
            raise ConfigError(f"RELAY_DEFAULT_PIPELINE: unknown pipeline {settings.default_pipeline!r} ({known})")
        return cls(pipelines, {**pipelines.routes, **env_routes}, settings.default_pipeline)

    def choose(self, record: ParsedRecord) -> tuple[str, Pipeline]:
        """The pipeline name for ``record`` and the pipeline whose limits apply (the default one for a name the
        pipelines file lacks); ``LookupError`` for a name that could not be a pipeline's at all."""
        requested = record.metadata.get("pipeline", "").strip()
        if requested:
            if not _PIPELINE_NAME.fullmatch(requested):
                raise LookupError(f"x-cos-meta-pipeline {requested[:64]!r} is not a pipeline name")
            known = self.pipelines.pipelines.get(requested)
            return requested, known or self.pipelines.get(self.default)
        matches = [prefix for prefix in self.routes if record.key.startswith(prefix)]
        name = self.routes[max(matches, key=len)] if matches else self.default
        return name, self.pipelines.get(name)


def admit(record: ParsedRecord, router: PipelineRouter, now_s: float) -> JobMessage | Rejected:
    """The SUBMIT message for an accepted upload, or why it is refused."""

    def reject(reason: str) -> Rejected:
        return Rejected(record.index, record.key, reason, record.task_id)

    try:
        name, pipeline = router.choose(record)
    except LookupError as exc:
        return reject(str(exc.args[0]))
    try:
        return JobMessage(
            task_id=record.task_id,
            user_id=record.user_id,
            pipeline=name,
            stage=Stage.SUBMIT,
            input=InputObject(bucket=record.bucket, key=record.key, etag=record.etag, size=record.size),
            seq=0,
            attempt=0,
            created_at=now_s,
            deadline_at=now_s + pipeline.deadline_s,
        )
    except FieldError as exc:
        return reject(f"cannot build a job message: {exc}")


def plan(
    results: Sequence[ParseResult], router: PipelineRouter, now_s: float
) -> tuple[list[tuple[ParsedRecord, JobMessage]], list[Rejected]]:
    """Split parse results into messages to send (with their records) and rejections, keeping event order."""
    accepted: list[tuple[ParsedRecord, JobMessage]] = []
    rejected: list[Rejected] = []
    for result in results:
        outcome = result if isinstance(result, Rejected) else admit(result, router, now_s)
        if isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            accepted.append((result, outcome))  # type: ignore[arg-type]
    return accepted, rejected
