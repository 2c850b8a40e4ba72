"""COS trigger events (REFERENCE.md §1) → uploads we accept, or the reason we don't.

:func:`parse_records` never raises: every record is handled on its own and becomes a :class:`ParsedRecord`
or a :class:`Rejected` with a reason; an event that is not even a COS event becomes one :class:`Rejected`.

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

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from objectstore.base import check_key
from objectstore.errors import InvalidKey
from relay_core.ids import is_safe_id

CREATED_PREFIX = "cos:ObjectCreated:"
META_PREFIX = "x-cos-meta-"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
_APPID = re.compile(r"^[0-9]{1,20}$")
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


def _parse_one(index: int, record: Any) -> ParseResult:
    try:
        return _record(index, record)
    except _Reject as rej:
        return Rejected(index, rej.key, rej.reason, rej.task_id)
    except Exception as exc:  # a shape we did not foresee must not sink the other records
        return Rejected(index, "", f"malformed record: {type(exc).__name__}: {exc}")


def _record(index: int, record: Any) -> ParsedRecord:
    cos = _dict(_dict(record, "record").get("cos"), "cos")
    obj = _dict(cos.get("cosObject"), "cos.cosObject")
    cos_bucket = _dict(cos.get("cosBucket"), "cos.cosBucket")
    event = _dict(record.get("event"), "event")

    event_name = _str(event, "eventName", "event")
    if not event_name.startswith(CREATED_PREFIX):
        raise _Reject(f"event {event_name} is not an object creation", _loose_key(obj))
    name, appid = _str(cos_bucket, "name", "cosBucket"), _appid(cos_bucket.get("appid"))
    if not _BUCKET_NAME.match(name):
        raise _Reject(f"cosBucket.name {name!r} is not a COS bucket name")
    key = _object_key(obj, appid, name)
    user_id, task_id, file_name = route_key(key)

    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise _Reject("cosObject.meta is not an object", key, task_id)
    region = cos_bucket.get("cosRegion") or cos_bucket.get("region") or ""
    return ParsedRecord(
        index=index,
        bucket=f"{name}-{appid}",
        key=key,
        size=_size(obj.get("size"), key, task_id),
        etag=_header(meta, "etag").strip('"'),
        event_name=event_name,
        event_time=_number(event.get("eventTime")),
        region=region if isinstance(region, str) else "",
        user_id=user_id,
        task_id=task_id,
        file_name=file_name,
        metadata=_user_metadata(meta),
    )


def route_key(key: str) -> tuple[str, str, str]:
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
    return (
        bool(name)
        and len(name.encode("utf-8", "surrogatepass")) <= 255
        and name.isprintable()
        and name == name.strip()
        and not name.startswith(".")
        and not _NAME_FORBIDDEN.intersection(name)
    )


def _object_key(obj: dict, appid: str, name: str) -> str:
    """The object key from ``cosObject.key`` (prefix stripped), reconciled with ``cosObject.url``."""
    full = _str(obj, "key", "cosObject")
    prefix = f"/{appid}/{name}/"
    if not full.startswith(prefix):
        raise _Reject(f"cosObject.key does not start with /<appid>/<bucket>/ ({prefix})")
    raw = full[len(prefix) :]
    url = obj.get("url")
    if isinstance(url, str) and url:
        from_url = _percent_decoded(urlsplit(url).path.lstrip("/"), "cosObject.url")
        if raw == from_url:
            key = raw
        elif _percent_decoded(raw, "cosObject.key") == from_url:
            key = from_url  # cosObject.key arrived percent-encoded too
        else:
            raise _Reject("cosObject.key and cosObject.url name different objects", raw)
    else:
        key = raw
    try:
        return check_key(key)
    except InvalidKey as exc:
        raise _Reject(str(exc), key) from None


def _loose_key(obj: dict) -> str:
    """Best-effort key of a record we reject anyway (``/<appid>/<bucket>/`` dropped), for the logs."""
    full = obj.get("key")
    if not isinstance(full, str):
        return ""
    parts = full.split("/", 3)
    return parts[3] if len(parts) == 4 and not parts[0] else full


def _percent_decoded(text: str, where: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _Reject(f"{where} has percent-escapes that are not UTF-8", text) from None


def _user_metadata(meta: dict) -> dict[str, str]:
    return {
        name[len(META_PREFIX) :].lower(): value
        for name, value in meta.items()
        if isinstance(name, str) and name.lower().startswith(META_PREFIX) and isinstance(value, str)
    }


def _header(meta: dict, wanted: str) -> str:
    """A ``meta`` value by case-insensitive name ("" when absent or not a string)."""
    for name, value in meta.items():
        if isinstance(name, str) and name.lower() == wanted and isinstance(value, str):
            return value
    return ""


def _size(value: Any, key: str, task_id: str) -> int:
    if isinstance(value, str) and value.isdigit():  # a string size is tolerated (unconfirmed)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Reject(f"cosObject.size {value!r} is not a byte count", key, task_id)
    return value


def _appid(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _APPID.match(text):
        raise _Reject(f"cosBucket.appid {value!r} is not a numeric app id")
    return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Reject(f"{where} is missing or not an object")
    return value


def _str(container: dict, name: str, where: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise _Reject(f"{where}.{name} is missing or not a string")
    return value
