"""COS trigger events → uploads we accept, or the reason we don't.

:func:`parse_records` never raises: every record is validated against :class:`~producer_shim.cos_event.CosRecord`
on its own and becomes a :class:`ParsedRecord` or a :class:`Rejected` with a reason; a record of the wrong
shape is rejected with the field path (``Records[1].cos.cosObject.key: field required``) and never stops the
others. An event that is not even a COS event becomes one :class:`Rejected`.

A record is accepted when it is a ``cos:ObjectCreated:*`` event (``Put``, ``Post``, ``Copy``,
``CompleteMultipartUpload``, ...) for a key of exactly the shape ``input/{userId}/{taskId}/{file}``: safe ids
(:func:`relay_core.ids.is_safe_id`) and a safe file name (printable, may be non-ASCII, no ``/ \\ %``, not
starting with ``.``, at most 255 UTF-8 bytes).

Keys: ``cosObject.key`` is ``/<appid>/<bucket-short-name>/<key>`` with the key raw, and ``cosObject.url``
carries it percent-encoded. Whether non-ASCII keys arrive raw or encoded in ``cosObject.key`` is unconfirmed,
so both are accepted: the raw key is used when it equals the decoded URL path, the once-decoded key when that
does. Nothing is decoded twice, so ``%252e%252e`` stays the literal name ``%2e%2e`` (refused: ``%``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from objectstore.errors import InvalidKey
from objectstore.keys import check_key
from producer_shim.cos_event import CosObject, CosRecord, describe
from relay_core.field_checks import FieldError, FieldErrors
from relay_core.ids import is_safe_id

CREATED_PREFIX = "cos:ObjectCreated:"
_NAME_FORBIDDEN = frozenset("/\\%")


@dataclass(frozen=True)
class ParsedRecord:
    """One accepted upload: ``input/{user_id}/{task_id}/{file_name}`` in ``bucket``."""

    index: int
    bucket: str  # full name: <name>-<appid>
    key: str
    size: int
    etag: str  # quotes stripped; "" when the event has none
    event_name: str
    event_time: float | None
    region: str  # cosRegion (ap-shanghai) when present, else the short code (sh)
    user_id: str
    task_id: str
    file_name: str
    metadata: dict[str, str] = field(default_factory=dict)  # x-cos-meta-<name> as <name>, lower-cased


@dataclass(frozen=True)
class Rejected:
    """A record (``index``; ``None`` for the event as a whole) we do not enqueue, and why."""

    index: int | None
    key: str
    reason: str
    task_id: str | None = None


ParseResult = ParsedRecord | Rejected


class _Reject(Exception):
    """Internal: stop handling one record with this reason."""

    def __init__(self, reason: str, key: str = "", task_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.key, self.task_id = reason, key, task_id


def parse_records(event: Any) -> list[ParseResult]:
    """Every record of ``event``, each parsed and routed independently. Never raises."""
    if not isinstance(event, dict):
        return [Rejected(None, "", f"event is a {type(event).__name__}, not a JSON object")]
    records = event.get("Records")
    if not isinstance(records, list):
        why = "has no Records" if records is None else "has Records that is not a list"
        return [Rejected(None, "", f"event {why}: not a COS trigger event")]
    if not records:
        return [Rejected(None, "", "event has an empty Records list")]
    return [_parse_one(index, record) for index, record in enumerate(records)]


def _parse_one(index: int, raw: Any) -> ParseResult:
    where = f"Records[{index}]"
    try:
        return _accept(index, CosRecord.from_wire(raw), where)
    except (FieldError, FieldErrors) as exc:
        return Rejected(index, "", describe(exc, where))
    except _Reject as rej:
        return Rejected(index, rej.key, rej.reason, rej.task_id)
    except Exception as exc:  # a shape we did not foresee must not sink the other records
        return Rejected(index, "", f"{where}: malformed record: {type(exc).__name__}: {exc}")


def _accept(index: int, record: CosRecord, where: str) -> ParsedRecord:
    """Routing of a well-shaped record: an object creation under ``input/{userId}/{taskId}/{file}``."""
    obj, bucket, event = record.cos.cos_object, record.cos.cos_bucket, record.event
    if not event.event_name.startswith(CREATED_PREFIX):
        raise _Reject(f"event {event.event_name} is not an object creation", _loose_key(obj.key))
    key = _object_key(obj, f"/{bucket.appid}/{bucket.name}/", f"{where}.cos.cosObject")
    user_id, task_id, file_name = _route_key(key)
    return ParsedRecord(
        index=index,
        bucket=bucket.full_name,
        key=key,
        size=obj.size,
        etag=obj.header("etag").strip('"'),
        event_name=event.event_name,
        event_time=event.event_time,
        region=bucket.cos_region or bucket.region,
        user_id=user_id,
        task_id=task_id,
        file_name=file_name,
        metadata=obj.user_metadata(),
    )


def _route_key(key: str) -> tuple[str, str, str]:
    """``(user_id, task_id, file_name)`` of ``input/{userId}/{taskId}/{file}``, else :class:`_Reject`."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "input":
        raise _Reject("key is not input/{userId}/{taskId}/{file}", key)
    _, user_id, task_id, file_name = parts
    if not is_safe_id(user_id):
        raise _Reject("user id in the key is not a safe id (1-64 of A-Z a-z 0-9 _ -)", key)
    if not is_safe_id(task_id):
        raise _Reject("task id in the key is not a safe id (1-64 of A-Z a-z 0-9 _ -)", key)
    if not is_safe_file_name(file_name):
        raise _Reject("file name in the key is not safe (printable, no / \\ %, no leading '.')", key, task_id)
    return user_id, task_id, file_name


def is_safe_file_name(name: str) -> bool:
    """Printable (non-ASCII allowed), no surrounding spaces, no ``/ \\ %``, no leading ``.``, ≤ 255 UTF-8 bytes."""
    return (
        bool(name)
        and len(name.encode("utf-8", "surrogatepass")) <= 255
        and name.isprintable()
        and name == name.strip()
        and not name.startswith(".")
        and not _NAME_FORBIDDEN.intersection(name)
    )


def _object_key(obj: CosObject, prefix: str, where: str) -> str:
    """The object key from ``cosObject.key`` (``prefix`` stripped), reconciled with ``cosObject.url``."""
    if not obj.key.startswith(prefix):
        raise _Reject(f"{where}.key: does not start with /<appid>/<bucket>/ ({prefix})", obj.key)
    raw = obj.key[len(prefix) :]
    if obj.url:
        from_url = _percent_decoded(urlsplit(obj.url).path.lstrip("/"), f"{where}.url")
        if raw == from_url:
            key = raw
        elif _percent_decoded(raw, f"{where}.key") == from_url:
            key = from_url  # cosObject.key arrived percent-encoded too
        else:
            raise _Reject(f"{where}: key and url name different objects", raw)
    else:
        key = raw
    try:
        return check_key(key)
    except InvalidKey as exc:
        raise _Reject(str(exc), key) from None


def _loose_key(full: str) -> str:
    """Best-effort key of a record we reject anyway (``/<appid>/<bucket>/`` dropped), for the logs."""
    parts = full.split("/", 3)
    return parts[3] if len(parts) == 4 and not parts[0] else full


def _percent_decoded(text: str, where: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _Reject(f"{where}: has percent-escapes that are not UTF-8", text) from None
