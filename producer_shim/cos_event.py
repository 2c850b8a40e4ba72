"""One record of a COS trigger event, as COS sends it: pydantic models of the shape, nothing more.

An event is ``{"Records": [record, ...]}``; a record is ``{"cos": {"cosObject", "cosBucket", ...}, "event":
{"eventName", "eventTime", ...}}`` (samples in tests/fixtures/cos_events/). Fields are snake_case here and
camelCase on the wire (``cos_object`` is ``cosObject``). Fields we do not model are ignored: the platform adds
fields over time.
What the values *mean* (which events and keys we accept) is decided in :mod:`producer_shim.events`.

:func:`describe` turns a :class:`pydantic.ValidationError` into one line that names the field path, e.g.
``Records[1].cos.cosObject.key: field required``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

META_PREFIX = "x-cos-meta-"
#: COS bucket short names: lower-case letters, digits and '-', at most 50 characters (the appid is apart)
BUCKET_NAME = r"^[a-z0-9][a-z0-9-]{0,49}$"
_MAX_ERRORS = 3


def _int_from_digits(value: object) -> object:
    """A size sent as a string of digits is taken as its number (whether COS ever does so is unconfirmed)."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _none_if_invalid(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """For informational fields: a value of the wrong type is dropped rather than sinking the record."""
    try:
        return handler(value)
    except ValidationError:
        return None


#: a byte count: a JSON integer (not a boolean, not a float) or a string of ASCII digits, never negative
ByteCount = Annotated[int, Field(ge=0, strict=True), BeforeValidator(_int_from_digits)]
#: a numeric app id, sent as a string or a number
AppId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$", coerce_numbers_to_str=True)]
Timestamp = Annotated[float | None, WrapValidator(_none_if_invalid)]


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class CosObject(_WireModel):
    #: ``/<appid>/<bucket-short-name>/<object key>``, the key raw (possibly percent-encoded, see events.py)
    key: str = Field(min_length=1)
    #: the object's URL, with the key percent-encoded
    url: str | None = None
    size: ByteCount
    #: the upload's headers (``Content-Type``, ``ETag``, ``x-cos-meta-*``, ...); values may be of any type
    meta: dict[str, object] = Field(default_factory=dict)
    vid: str | None = None

    def header(self, wanted: str) -> str:
        """The ``meta`` value named ``wanted`` (case-insensitive); "" when absent or not a string."""
        for name, value in self.meta.items():
            if name.lower() == wanted and isinstance(value, str):
                return value
        return ""

    def user_metadata(self) -> dict[str, str]:
        """``x-cos-meta-<name>`` string values as ``{<name>: value}``, names lower-cased."""
        return {
            name[len(META_PREFIX) :].lower(): value
            for name, value in self.meta.items()
            if name.lower().startswith(META_PREFIX) and isinstance(value, str)
        }


class CosBucket(_WireModel):
    name: str = Field(pattern=BUCKET_NAME)  # the short name, without ``-<appid>``
    appid: AppId
    region: str = ""  # the short code: gz, sh, cd, ...
    cos_region: str | None = None  # ap-guangzhou, ...
    s3_region: str | None = None

    @property
    def full_name(self) -> str:
        """The bucket as the COS API names it: ``<name>-<appid>``."""
        return f"{self.name}-{self.appid}"


class CosPart(_WireModel):
    cos_object: CosObject
    cos_bucket: CosBucket
    cos_schema_version: str | None = None
    cos_notification_id: str | None = None


class EventPart(_WireModel):
    event_name: str = Field(min_length=1)  # cos:ObjectCreated:Put, cos:ObjectRemove:Delete, ...
    event_time: Timestamp = None  # unix seconds
    event_source: str | None = None
    event_version: str | None = None


class CosRecord(_WireModel):
    """One entry of ``Records``."""

    cos: CosPart
    event: EventPart


def describe(error: ValidationError, where: str) -> str:
    """``<where><field path>: <problem>`` for the first few errors of ``error``, joined by ``; ``."""
    lines = [f"{where}{_path(e['loc'])}: {_problem(e['type'], e['msg'])}" for e in error.errors()[:_MAX_ERRORS]]
    more = error.error_count() - _MAX_ERRORS
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _problem(kind: str, message: str) -> str:
    if kind == "missing":
        return "field required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "not a JSON object"
    return message[:1].lower() + message[1:] if message[1:2].islower() else message  # "Input should" / "URL"
