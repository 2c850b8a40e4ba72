"""Pipelines as data: ``pipelines.toml`` (packaged) or the file named by ``RELAY_PIPELINES``.

:func:`load_pipelines` checks the whole file once; any typo raises :class:`PipelineConfigError` naming the
file, the line and the field (``pipelines.toml:14: pipelines.model_pose12.deadine_s: unknown field``). The
classes below are frozen dataclasses built only by that check (``dataclasses.replace`` makes variants, unchecked).
"""

from __future__ import annotations

import re
import string
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast, get_args

from relay_core.errors import ConfigError, OurFault
from relay_core.field_checks import (
    UNKNOWN,
    Check,
    FieldError,
    FieldErrors,
    Fields,
    integer,
    items,
    mapping,
    number,
    one_of,
    optional,
    text,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the SCF runtime is 3.10
    import tomli as tomllib

PACKAGED = Path(__file__).with_name("pipelines.toml")
FILE_TYPES = ("jpeg", "png", "webp", "gif", "mp4")
NOT_A_TABLE = "not a table"


class PipelineConfigError(ConfigError):
    """The pipelines file is invalid; the message names the file, line and field."""


class UnknownPipeline(OurFault, KeyError):
    """A message or upload names a pipeline the loaded pipelines file does not define."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_NUMBER_SPEC = re.compile(r"0?[1-9]?d?")  # "", "02", "3d", "02d": at most 9 digits wide
_SAFE_OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
Vendor = Literal["runninghub"]
Kind = Literal["workflow", "ai-app"]
Moderation = Literal["image", "video"]
_string = text()
_name = text(min_length=1)
_vendor = cast(Check[Vendor], one_of(*get_args(Vendor)))
_kind = cast(Check[Kind], one_of(*get_args(Kind)))
_moderation = cast(Check[Moderation], one_of(*get_args(Moderation)))


def _file_types(value: object) -> tuple[str, ...]:
    types = _listed_strings(value)
    unknown = [t for t in types if t not in FILE_TYPES]
    if unknown:
        raise FieldError(f"unknown file types {unknown}; known: {list(FILE_TYPES)}")
    return types


_listed_strings = items(_string, min_length=1)


def _output_name(value: object) -> str:
    """A name template: only ``{n}`` with a short numeric format (``{n:99999999999}`` would build an 11 GB
    string), rendering to a safe file name."""
    name = _name(value)
    try:
        fields = [(field, spec) for _, field, spec, _ in string.Formatter().parse(name) if field is not None]
    except ValueError as exc:
        raise FieldError(f"name template {name!r} is not a format string: {exc}") from None
    for field_name, spec in fields:
        if field_name != "n" or not _NUMBER_SPEC.fullmatch(spec or ""):
            raise FieldError(f"name template {name!r}: only {{n}} or {{n:02}}-style fields are allowed")
    rendered = name.format(n=1)
    if not _SAFE_OUTPUT_NAME.fullmatch(rendered) or ".." in rendered:
        raise FieldError(f"name template {name!r} renders to an unsafe file name {rendered!r}")
    return name


@dataclass(frozen=True)
class OutputSpec:
    """What a task delivers: ``count`` files named by the template ``name``, each of ``types``, at most
    ``max_bytes``."""

    count: int
    name: str
    types: tuple[str, ...]
    max_bytes: int

    @classmethod
    def from_toml(cls, data: object) -> OutputSpec:
        f = Fields(data, not_an_object=NOT_A_TABLE)
        built = cls(
            count=f.take("count", integer(ge=1, le=64)),
            name=f.take("name", _output_name),
            types=f.take("types", _file_types),
            max_bytes=f.take("max_bytes", integer(gt=0)),
        )
        f.finish(forbid_unknown=True)
        return built

    def file_name(self, n: int) -> str:
        """Name of the n-th output (1-based)."""
        return self.name.format(n=n)


@dataclass(frozen=True)
class PollPolicy:
    """Delays between status queries: full jitter over ``base_s * factor**polls``, at most ``max_s``."""

    first_s: float
    base_s: float
    factor: float
    max_s: float
    #: slow down while the vendor says queued
    queued_factor: float = 1.0

    @classmethod
    def from_toml(cls, data: object) -> PollPolicy:
        f = Fields(data, not_an_object=NOT_A_TABLE)
        built = cls(
            first_s=f.take("first_s", number(ge=0)),
            base_s=f.take("base_s", number(gt=0)),
            factor=f.take("factor", number(ge=1)),
            max_s=f.take("max_s", number(gt=0)),
            queued_factor=f.take("queued_factor", number(ge=1), 1.0),
        )
        f.finish(forbid_unknown=True)
        return built


@dataclass(frozen=True)
class NodeTemplate:
    """One input of the vendor's workflow: ``value`` (``{input}`` marks the upload) goes to ``field_name`` of
    node ``node_id``."""

    node_id: str
    field_name: str
    value: str

    @classmethod
    def from_toml(cls, data: object) -> NodeTemplate:
        f = Fields(data, not_an_object=NOT_A_TABLE)
        built = cls(
            node_id=f.take("node_id", _string),
            field_name=f.take("field_name", _string),
            value=f.take("value", _string),
        )
        f.finish(forbid_unknown=True)
        return built


@dataclass(frozen=True)
class Pipeline:
    """One ``[pipelines.<name>]`` table: the vendor target, the accepted inputs, the outputs, the deadline."""

    vendor: Vendor
    kind: Kind
    target_id: str
    deadline_s: int
    moderation: Moderation
    input_types: tuple[str, ...]
    max_input_bytes: int
    outputs: OutputSpec
    poll: PollPolicy
    nodes: tuple[NodeTemplate, ...]
    name: str = ""
    instance_type: str | None = None

    @classmethod
    def from_toml(cls, data: object) -> Pipeline:
        f = Fields(data, not_an_object=NOT_A_TABLE)
        built = cls(
            name=f.take("name", _string, ""),
            vendor=f.take("vendor", _vendor),
            kind=f.take("kind", _kind),
            target_id=f.take("target_id", _name),
            deadline_s=f.take("deadline_s", integer(ge=1, le=86400)),
            moderation=f.take("moderation", _moderation),
            input_types=f.take("input_types", _listed_strings),
            max_input_bytes=f.take("max_input_bytes", integer(gt=0)),
            outputs=f.take("outputs", OutputSpec.from_toml),
            poll=f.take("poll", PollPolicy.from_toml),
            nodes=f.take("nodes", items(NodeTemplate.from_toml, min_length=1)),
            instance_type=f.take("instance_type", optional(_string), None),
        )
        f.finish(forbid_unknown=True)
        if not any("{input}" in node.value for node in built.nodes):
            raise FieldError("no node takes '{input}': the upload would never reach the vendor", ("nodes",))
        return built


@dataclass(frozen=True)
class PipelineFile:
    """A whole pipelines file: its pipelines by name and its ``[routes]`` (key prefix → pipeline name)."""

    pipelines: dict[str, Pipeline]
    routes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, data: object) -> PipelineFile:
        f = Fields(data, not_an_object=NOT_A_TABLE)
        built = cls(
            routes=f.take("routes", mapping(_string, not_an_object=NOT_A_TABLE), {}),
            pipelines=f.take("pipelines", mapping(Pipeline.from_toml, not_an_object=NOT_A_TABLE)),
        )
        f.finish(forbid_unknown=True)
        for prefix, name in built.routes.items():
            if name not in built.pipelines:
                raise FieldError(f"route {prefix!r} names unknown pipeline {name!r}", ("routes", prefix))
        return built

    def get(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines))
            raise UnknownPipeline(
                f"unknown pipeline {name!r} (known: {known}); fix pipelines.toml and redrive"
            ) from None


def load_pipelines(path: Path | str | None = None) -> PipelineFile:
    """Parse and check a pipelines file (cached per path)."""
    return _load(Path(path) if path else PACKAGED)


@lru_cache(maxsize=8)
def _load(path: Path) -> PipelineFile:
    try:
        text_ = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(f"{path}: cannot read pipelines file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineConfigError(f"{path.name}: {exc}") from None
    for name, body in (raw.get("pipelines") or {}).items():
        if isinstance(body, dict):
            body.setdefault("name", name)
    try:
        return PipelineFile.from_toml(raw)
    except (FieldError, FieldErrors) as exc:
        errors = exc.errors if isinstance(exc, FieldErrors) else [exc]
        # an unknown key is the likelier typo than the missing key it causes: name it first
        err = sorted(errors, key=lambda e: e.problem != UNKNOWN)[0]
        raise PipelineConfigError(f"{path.name}:{_line_of(text_, err.path)}: {err.where}: {err.problem}") from None


def _line_of(text_: str, path: tuple[str | int, ...]) -> int:
    """Best line for a problem: the first line defining the innermost named key after its table."""
    loc = [str(p) for p in path]
    lines = text_.splitlines()
    start, end = 0, len(lines)
    if len(loc) >= 2 and loc[0] == "pipelines":
        header = re.compile(rf"^\s*\[\s*pipelines\.{re.escape(loc[1])}\s*\]")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    for key in reversed([str(p) for p in path[2:] if not isinstance(p, int)]):
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.search(lines[i]):
                return i + 1
    return start + 1
