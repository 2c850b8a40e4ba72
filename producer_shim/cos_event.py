"""One record of a COS trigger event, as COS sends it: the shape, checked, nothing more.

An event is ``{"Records": [record, ...]}``; a record is ``{"cos": {"cosObject", "cosBucket", ...}, "event":
{"eventName", "eventTime", ...}}`` (samples in tests/fixtures/cos_events/). Fields are snake_case here and
camelCase on the wire (``cos_object`` is ``cosObject``; the snake_case name is read too when the camelCase one is
absent). Fields we do not model are ignored: the platform adds fields over time.
What the values *mean* (which events and keys we accept) is decided in :mod:`producer_shim.events`.

:meth:`CosRecord.from_wire` checks a whole record and raises every problem at once
(:class:`~relay_core.field_checks.FieldError` or ``FieldErrors``); :func:`describe` turns them into one line that
names each field path, e.g. ``Records[1].cos.cosObject.key: field required``.

The parts are named tuples, built only by their ``from_wire`` (which passes every field): immutable values like
frozen dataclasses, but a quarter of their cost to define, which the shim pays on every cold start (a frozen
dataclass compiles six generated methods from source).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from relay_core.field_checks import FieldError, FieldErrors, Fields, dotted, integer, mapping, optional, text

META_PREFIX = "x-cos-meta-"
#: COS bucket short names: lower-case letters, digits and '-', at most 50 characters (the appid is apart)
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
APP_ID = re.compile(r"^[0-9]{1,20}$")
NOT_AN_OBJECT = "not a JSON object"
_MAX_ERRORS = 3

_string = text()
_optional_string = optional(_string)
_byte_count = integer(ge=0)
_app_id = text(pattern=APP_ID)
_headers = mapping(lambda value: value, not_an_object=NOT_AN_OBJECT)


def _size(value: object) -> int:
    """A byte count: a JSON integer (not a boolean, not a float) or a string of ASCII digits (whether COS ever
    sends one is unconfirmed), never negative."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return _byte_count(value)


def _numeric_app_id(value: object) -> str:
    """A numeric app id, sent as a string or a number (not a boolean)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return _app_id(value)


def _timestamp(value: object) -> float | None:
    """Unix seconds; informational, so a value of the wrong type reads as ``None`` rather than sinking the record."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


class CosObject(NamedTuple):
    """``cosObject``: the uploaded object."""

    #: ``/<appid>/<bucket-short-name>/<object key>``, the key raw (possibly percent-encoded, see events.py)
    key: str
    size: int
    #: the object's URL, with the key percent-encoded
    url: str | None
    #: the upload's headers (``Content-Type``, ``ETag``, ``x-cos-meta-*``, ...); values may be of any type
    meta: dict[str, object]
    vid: str | None

    @classmethod
    def from_wire(cls, data: object) -> CosObject:
        f = Fields(data, not_an_object=NOT_AN_OBJECT)
        built = cls(
            key=f.take("key", text(min_length=1)),
            url=f.take("url", _optional_string, None),
            size=f.take("size", _size),
            meta=f.take("meta", _headers, {}),
            vid=f.take("vid", _optional_string, None),
        )
        f.finish()
        return built

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


class CosBucket(NamedTuple):
    """``cosBucket``: the bucket the object was uploaded to."""

    name: str  # the short name, without ``-<appid>``
    appid: str
    region: str  # the short code: gz, sh, cd, ...; "" when absent
    cos_region: str | None  # ap-guangzhou, ...
    s3_region: str | None

    @classmethod
    def from_wire(cls, data: object) -> CosBucket:
        f = Fields(data, not_an_object=NOT_AN_OBJECT)
        built = cls(
            name=f.take("name", text(pattern=BUCKET_NAME)),
            appid=f.take("appid", _numeric_app_id),
            region=f.take("region", _string, ""),
            cos_region=f.take("cos_region", _optional_string, None, alias="cosRegion"),
            s3_region=f.take("s3_region", _optional_string, None, alias="s3Region"),
        )
        f.finish()
        return built

    @property
    def full_name(self) -> str:
        """The bucket as the COS API names it: ``<name>-<appid>``."""
        return f"{self.name}-{self.appid}"


class CosPart(NamedTuple):
    """A record's ``cos``: the object and its bucket."""

    cos_object: CosObject
    cos_bucket: CosBucket
    cos_schema_version: str | None
    cos_notification_id: str | None

    @classmethod
    def from_wire(cls, data: object) -> CosPart:
        f = Fields(data, not_an_object=NOT_AN_OBJECT)
        built = cls(
            cos_object=f.take("cos_object", CosObject.from_wire, alias="cosObject"),
            cos_bucket=f.take("cos_bucket", CosBucket.from_wire, alias="cosBucket"),
            cos_schema_version=f.take("cos_schema_version", _optional_string, None, alias="cosSchemaVersion"),
            cos_notification_id=f.take("cos_notification_id", _optional_string, None, alias="cosNotificationId"),
        )
        f.finish()
        return built


class EventPart(NamedTuple):
    """A record's ``event``: what happened to the object, and when."""

    event_name: str  # cos:ObjectCreated:Put, cos:ObjectRemove:Delete, ...
    event_time: float | None  # unix seconds
    event_source: str | None
    event_version: str | None

    @classmethod
    def from_wire(cls, data: object) -> EventPart:
        f = Fields(data, not_an_object=NOT_AN_OBJECT)
        built = cls(
            event_name=f.take("event_name", text(min_length=1), alias="eventName"),
            event_time=f.take("event_time", _timestamp, None, alias="eventTime"),
            event_source=f.take("event_source", _optional_string, None, alias="eventSource"),
            event_version=f.take("event_version", _optional_string, None, alias="eventVersion"),
        )
        f.finish()
        return built


class CosRecord(NamedTuple):
    """One entry of ``Records``."""

    cos: CosPart
    event: EventPart

    @classmethod
    def from_wire(cls, data: object) -> CosRecord:
        """The record ``data`` (decoded JSON), or every problem it has (``FieldError``/``FieldErrors``)."""
        f = Fields(data, not_an_object=NOT_AN_OBJECT)
        built = cls(cos=f.take("cos", CosPart.from_wire), event=f.take("event", EventPart.from_wire))
        f.finish()
        return built


def describe(error: FieldError | FieldErrors, where: str) -> str:
    """``<where>.<field path>: <problem>`` for the first few problems of ``error``, joined by ``; ``."""
    errors = error.errors if isinstance(error, FieldErrors) else [error]
    lines = [f"{where}{_joined(e.path)}: {e.problem}" for e in errors[:_MAX_ERRORS]]
    more = len(errors) - _MAX_ERRORS
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def _joined(path: tuple[str | int, ...]) -> str:
    text_ = dotted(path)
    return text_ if not text_ or text_.startswith("[") else f".{text_}"
