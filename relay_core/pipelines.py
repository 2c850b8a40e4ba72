"""Pipelines as data: ``pipelines.toml`` (packaged) or the file named by ``RELAY_PIPELINES``.

:func:`load_pipelines` validates the whole file once; any typo raises :class:`PipelineConfigError` naming the
file, the line and the field (``pipelines.toml:14: pipelines.model_pose12.deadine_s: unknown field``).
"""

from __future__ import annotations

import re
import string
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relay_core.errors import ConfigError, OurFault

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the SCF runtime is 3.10
    import tomli as tomllib

PACKAGED = Path(__file__).with_name("pipelines.toml")
FILE_TYPES = ("jpeg", "png", "webp", "gif", "mp4")


class PipelineConfigError(ConfigError):
    """The pipelines file is invalid; the message names the file, line and field."""


class UnknownPipeline(OurFault, KeyError):
    """A message or upload names a pipeline the loaded pipelines file does not define."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_NUMBER_SPEC = re.compile(r"0?[1-9]?d?")  # "", "02", "3d", "02d": at most 9 digits wide


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputSpec(_Strict):
    count: int = Field(ge=1, le=64)
    name: str = Field(min_length=1)
    types: tuple[str, ...] = Field(min_length=1)
    max_bytes: int = Field(gt=0)

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in types if t not in FILE_TYPES]
        if unknown:
            raise ValueError(f"unknown file types {unknown}; known: {list(FILE_TYPES)}")
        return types

    @field_validator("name")
    @classmethod
    def _renders(cls, name: str) -> str:
        # Only "{n}" with a short numeric format may appear: "{n:99999999999}" would build an 11 GB string.
        try:
            fields = [(field, spec) for _, field, spec, _ in string.Formatter().parse(name) if field is not None]
        except ValueError as exc:
            raise ValueError(f"name template {name!r} is not a format string: {exc}") from None
        for field, spec in fields:
            if field != "n" or not _NUMBER_SPEC.fullmatch(spec or ""):
                raise ValueError(f"name template {name!r}: only {{n}} or {{n:02}}-style fields are allowed")
        rendered = name.format(n=1)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", rendered) or ".." in rendered:
            raise ValueError(f"name template {name!r} renders to an unsafe file name {rendered!r}")
        return name

    def file_name(self, n: int) -> str:
        """Name of the n-th output (1-based)."""
        return self.name.format(n=n)


class PollPolicy(_Strict):
    """Delays between status queries: full jitter over ``base_s * factor**polls``, at most ``max_s``."""

    first_s: float = Field(ge=0)
    base_s: float = Field(gt=0)
    factor: float = Field(ge=1)
    max_s: float = Field(gt=0)
    queued_factor: float = Field(1.0, ge=1, description="slow down while the vendor says queued")


class NodeTemplate(_Strict):
    node_id: str
    field_name: str
    value: str


class Pipeline(_Strict):
    name: str = ""
    vendor: Literal["runninghub"]
    kind: Literal["workflow", "ai-app"]
    target_id: str = Field(min_length=1)
    deadline_s: int = Field(ge=1, le=86400)
    moderation: Literal["image", "video"]
    input_types: tuple[str, ...] = Field(min_length=1)
    max_input_bytes: int = Field(gt=0)
    outputs: OutputSpec
    poll: PollPolicy
    nodes: tuple[NodeTemplate, ...] = Field(min_length=1)
    instance_type: str | None = None

    @model_validator(mode="after")
    def _has_input_node(self) -> Pipeline:
        if not any("{input}" in node.value for node in self.nodes):
            raise ValueError("no node takes '{input}': the upload would never reach the vendor")
        return self


class PipelineFile(_Strict):
    routes: dict[str, str] = Field(default_factory=dict)
    pipelines: dict[str, Pipeline]

    @model_validator(mode="after")
    def _routes_exist(self) -> PipelineFile:
        for prefix, name in self.routes.items():
            if name not in self.pipelines:
                raise ValueError(f"route {prefix!r} names unknown pipeline {name!r}")
        return self

    def get(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines))
            raise UnknownPipeline(
                f"unknown pipeline {name!r} (known: {known}); fix pipelines.toml and redrive"
            ) from None


def load_pipelines(path: Path | str | None = None) -> PipelineFile:
    """Parse and validate a pipelines file (cached per path)."""
    return _load(Path(path) if path else PACKAGED)


@lru_cache(maxsize=8)
def _load(path: Path) -> PipelineFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(f"{path}: cannot read pipelines file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineConfigError(f"{path.name}: {exc}") from None
    for name, body in (raw.get("pipelines") or {}).items():
        if isinstance(body, dict):
            body.setdefault("name", name)
    try:
        return PipelineFile.model_validate(raw)
    except ValidationError as exc:
        # an unknown key is the likelier typo than the missing key it causes: name it first
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = [str(p) for p in err["loc"]]
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise PipelineConfigError(f"{path.name}:{_line_of(text, loc)}: {'.'.join(loc)}: {msg}") from None


def _line_of(text: str, loc: list[str]) -> int:
    """Best line for a validation error: the first line defining the innermost named key after its table."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    if len(loc) >= 2 and loc[0] == "pipelines":
        header = re.compile(rf"^\s*\[\s*pipelines\.{re.escape(loc[1])}\s*\]")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for key in reversed([p for p in loc[2:] if not p.isdigit()]):
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.search(lines[i]):
                return i + 1
    return start + 1
