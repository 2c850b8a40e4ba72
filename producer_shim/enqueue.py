"""Accepted uploads → first-hop :class:`JobMessage` s: pick the pipeline, enforce its input limits.

The pipeline of an upload is, in order: its ``x-cos-meta-pipeline`` metadata when that names a known
pipeline (an unknown name is rejected, never silently replaced), else the longest key prefix among the
pipelines file's ``[routes]`` and ``RELAY_ROUTES`` (which wins on an equal prefix), else
``RELAY_DEFAULT_PIPELINE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from jobqueue.message import InputObject, JobMessage, Stage
from producer_shim.events import ParsedRecord, ParseResult, Rejected
from relay_core.errors import ConfigError
from relay_core.pipelines import Pipeline, PipelineFile, load_pipelines
from relay_core.settings import RelaySettings


@dataclass(frozen=True)
class PipelineRouter:
    pipelines: PipelineFile
    routes: dict[str, str]  # key prefix -> pipeline name
    default: str

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

    def choose(self, record: ParsedRecord) -> Pipeline:
        """The pipeline for ``record``; ``LookupError`` with the reason for an unknown metadata name."""
        requested = record.metadata.get("pipeline", "").strip()
        if requested:
            if requested not in self.pipelines.pipelines:
                raise LookupError(f"x-cos-meta-pipeline names unknown pipeline {requested[:64]!r}")
            return self.pipelines.get(requested)
        matches = [prefix for prefix in self.routes if record.key.startswith(prefix)]
        name = self.routes[max(matches, key=len)] if matches else self.default
        return self.pipelines.get(name)


def admit(record: ParsedRecord, router: PipelineRouter, now_s: float) -> JobMessage | Rejected:
    """The SUBMIT message for an accepted upload, or why it is refused."""

    def reject(reason: str) -> Rejected:
        return Rejected(record.index, record.key, reason, record.task_id)

    try:
        pipeline = router.choose(record)
    except LookupError as exc:
        return reject(str(exc.args[0]))
    if record.size == 0:
        return reject("the uploaded object is empty")
    if record.size > pipeline.max_input_bytes:
        return reject(
            f"the upload is {record.size} bytes, over the {pipeline.max_input_bytes} bytes "
            f"pipeline {pipeline.name} accepts"
        )
    try:
        return JobMessage(
            task_id=record.task_id,
            user_id=record.user_id,
            pipeline=pipeline.name,
            stage=Stage.SUBMIT,
            input=InputObject(bucket=record.bucket, key=record.key, etag=record.etag, size=record.size),
            seq=0,
            attempt=0,
            created_at=now_s,
            deadline_at=now_s + pipeline.deadline_s,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        return reject(f"cannot build a job message: {'.'.join(map(str, err['loc']))}: {err['msg']}")


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
