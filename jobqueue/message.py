"""The job message: one hop of one task through the state machine.

A message is compact (well under 4 KB), holds no secret and no vendor URL, and is versioned by ``v``.
:func:`parse` raises :class:`~jobqueue.errors.PoisonMessage` for anything that is not a valid message of a
known version (``invalid job message: seq: input should be less than or equal to 100000``): the consumer
dead-letters those at once with the reason.

``seq`` counts hops: every successor carries ``seq + 1``. The ledger remembers the highest ``seq`` whose
successor was sent, so a duplicate or redelivered message with a lower ``seq`` is dropped.

The body (:meth:`JobMessage.dumps`) is one JSON object without spaces, keys in this order, ``vendor_task_id``,
``audit_job_id`` and ``not_before`` left out when ``None``, text as UTF-8 (not ``\\u`` escapes)::

    {"v":1,"task_id":"t1","user_id":"u1","pipeline":"model_pose12","stage":"poll",
     "input":{"bucket":"relay-in-1250000000","key":"input/u1/t1/a.jpg","etag":"","size":1029},
     "vendor_task_id":"1838000000000000009","audit_job_id":"vid-1","seq":3,"attempt":0,"polls":2,
     "created_at":1713160000.5,"deadline_at":1713161800.5,"not_before":1713160030.0}

:func:`parse` reads any key order; unknown keys are refused. Messages are frozen and checked however they are
built (:func:`parse`, the constructor, :meth:`JobMessage.replace`, :meth:`JobMessage.next`): a bad value raises
:class:`~relay_core.field_checks.FieldError`, a ``ValueError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from jobqueue.errors import PoisonMessage
from relay_core.field_checks import MISSING, UNKNOWN, Check, FieldError, integer, number, optional, text
from relay_core.ids import SAFE_ID, check_id

VERSION = 1
MAX_BODY_BYTES = 4096
#: a task takes at most a few hundred hops (bounded attempts per stage); far below 2**53, where Lua numbers
#: (doubles) stop counting exactly, so a hostile seq can neither crash-loop SQLite nor stall Redis
MAX_HOPS = 100_000


class Stage(str, enum.Enum):
    SUBMIT = "submit"  # input -> vendor, record vendor task id
    POLL = "poll"  # ask the vendor; wait by re-sending with a delay
    COLLECT = "collect"  # results -> staging, moderate (images inline, video starts an audit)
    AUDIT = "audit"  # poll an asynchronous (video) moderation job
    REPORT = "report"  # signed callback of the ledger's terminal outcome


@dataclass(frozen=True, kw_only=True)
class InputObject:
    """The uploaded object a task works on."""

    bucket: str
    key: str
    etag: str = ""
    size: int

    def __post_init__(self) -> None:
        _check(self.__dict__, _INPUT_RULES)


# Not slotted: parse() and replace() fill an instance's __dict__ with all its checked values at once.
@dataclass(frozen=True, kw_only=True)
class JobMessage:
    """One hop of one task; fields are checked when it is built (``ValueError`` naming the field)."""

    v: int = VERSION
    task_id: str
    user_id: str
    pipeline: str
    stage: Stage  # a stage's value ("poll") is taken as its Stage
    input: InputObject
    vendor_task_id: str | None = None
    audit_job_id: str | None = None
    seq: int = 0
    #: attempts of the current stage, reset on stage change
    attempt: int = 0
    #: vendor status queries so far
    polls: int = 0
    created_at: float
    #: a NaN or infinite deadline would never pass: refused, like every non-finite time here
    deadline_at: float
    #: set when a delay was split into queue-sized hops
    not_before: float | None = None

    def __post_init__(self) -> None:
        _check(self.__dict__, _MESSAGE_RULES)

    def replace(self, **changes: Any) -> JobMessage:
        """This message with ``changes``, each checked as in a new message (the other fields already were);
        unlike :meth:`next`, ``seq`` and the rest stay as they are."""
        values = self.__dict__.copy()
        name = ""
        try:
            for name, value in changes.items():
                values[name] = _MESSAGE_RULES_BY_NAME[name](value)
        except FieldError as exc:
            raise exc.under(name) from None
        except KeyError:
            raise TypeError(f"JobMessage has no field {name!r}") from None
        return _instance(JobMessage, values)

    def next(self, stage: Stage | None = None, **changes: Any) -> JobMessage:
        """The successor hop: ``seq + 1``; ``attempt`` resets when the stage changes."""
        stage = stage or self.stage
        attempt = changes.pop("attempt", 0 if stage != self.stage else self.attempt)
        return self.replace(seq=self.seq + 1, stage=stage, attempt=attempt, **{"not_before": None, **changes})

    def dumps(self) -> str:
        """The queue body (its shape: the module docstring)."""
        # One f-string over the instance's dict (quicker than attribute access on these instances), a little
        # faster than pydantic's serializer was: ids are safe ids and the stage a known word, so nothing in them
        # needs escaping (``_value_`` is the member's documented attribute, faster than the ``value`` property);
        # floats are finite, and a float's repr is its JSON.
        field = self.__dict__
        source = field["input"].__dict__
        vendor_task_id, audit_job_id, not_before = field["vendor_task_id"], field["audit_job_id"], field["not_before"]
        body = (
            f'{_HEAD}{field["task_id"]}","user_id":"{field["user_id"]}",'
            f'"pipeline":{_quoted(field["pipeline"])},"stage":"{field["stage"]._value_}","input":{{"bucket":'
            f'{_quoted(source["bucket"])},"key":{_quoted(source["key"])},"etag":{_quoted(source["etag"])},'
            f'"size":{source["size"]}}},'
            f"{'' if vendor_task_id is None else _VENDOR_TASK_ID + _quoted(vendor_task_id) + ','}"
            f"{'' if audit_job_id is None else _AUDIT_JOB_ID + _quoted(audit_job_id) + ','}"
            f'"seq":{field["seq"]},"attempt":{field["attempt"]},"polls":{field["polls"]},'
            f'"created_at":{field["created_at"]!r},"deadline_at":{field["deadline_at"]!r}'
            f"{'}' if not_before is None else _NOT_BEFORE + repr(not_before) + '}'}"
        )
        if len(body) > _SURELY_SMALL and len(body.encode()) > MAX_BODY_BYTES:  # pragma: no cover - capped
            raise ValueError(f"job message is {len(body.encode())} bytes, over {MAX_BODY_BYTES}")
        return body

    def as_json(self) -> dict[str, Any]:
        """The body as its decoded JSON object (for listings)."""
        data: dict[str, Any] = json.loads(self.dumps())
        return data


_quoted = json.encoder.encode_basestring  # a JSON string, non-ASCII kept as is
_HEAD = f'{{"v":{VERSION},"task_id":"'  # v is VERSION in every message
_VENDOR_TASK_ID, _AUDIT_JOB_ID, _NOT_BEFORE = '"vendor_task_id":', '"audit_job_id":', ',"not_before":'
_SURELY_SMALL = MAX_BODY_BYTES // 4  # characters: a UTF-8 character is at most 4 bytes


def parse(body: str | bytes) -> JobMessage:
    """Decode a queue body or raise :class:`PoisonMessage` with a short reason."""
    try:
        data = _json_of(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from None
    if type(data) is not dict:
        raise PoisonMessage("body is not a JSON object")
    try:
        return _decoded(JobMessage, data, _MESSAGE_JSON_RULES, _MESSAGE_DEFAULTS)
    except FieldError as exc:
        raise PoisonMessage(f"invalid job message: {exc}") from None


def _json_of(body: str | bytes) -> Any:
    """``json.loads(body)``, a microsecond faster for the usual body (a ``str`` that is one JSON document and
    nothing else): ``raw_decode`` skips ``loads``' whitespace handling, and anything else goes to ``loads``."""
    if type(body) is str:
        try:
            data, end = _raw_decode(body)
        except ValueError:
            return json.loads(body)  # leading whitespace is no error for loads; otherwise its error is the same
        if end == len(body):
            return data
    return json.loads(body)


_raw_decode = json.JSONDecoder().raw_decode


def task_of(body: str | bytes) -> str | None:
    """Best-effort task id of a body, even a poisoned one (for logs and the DLQ listing)."""
    try:
        data = json.loads(body)
        value = data.get("task_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) and len(value) <= 64 else None
    except (ValueError, UnicodeDecodeError):
        return None


# -- the rules ---------------------------------------------------------------------------------------------------

#: a stage by its value (a Stage, equal to its value and hashed alike, finds itself)
_STAGES: dict[object, Stage] = {stage.value: stage for stage in Stage}
_STAGE_PROBLEM = "input should be " + ", ".join(f"'{s.value}'" for s in list(Stage)[:-1]) + " or 'report'"
_is_safe_id = SAFE_ID.fullmatch


def _version(value: object) -> int:
    if value != VERSION or type(value) is not int:
        raise FieldError(f"unknown message version {value!r} (this worker reads v{VERSION})")
    return VERSION


def _safe_id(value: object) -> str:
    if type(value) is str and _is_safe_id(value):
        return value
    try:
        check_id(value)  # type: ignore[arg-type]  # for its message
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    raise AssertionError(f"check_id accepted {value!r}, which SAFE_ID refused")  # pragma: no cover


def _stage(value: object) -> Stage:
    try:
        return _STAGES[value]
    except (KeyError, TypeError):  # TypeError: a list or an object is unhashable
        raise FieldError(_STAGE_PROBLEM) from None


def _input(value: object) -> InputObject:
    if type(value) is not InputObject:
        raise FieldError("input should be an InputObject")
    return value


def _input_from_json(value: object) -> InputObject:
    return _decoded(InputObject, value, _INPUT_RULES_BY_NAME, _INPUT_DEFAULTS)


_Rules = tuple[tuple[str, Check[Any]], ...]
_hops = integer(ge=0, le=MAX_HOPS)
_time = number()
_INPUT_RULES: _Rules = (
    ("bucket", text(min_length=1, max_length=80)),
    ("key", text(min_length=1, max_length=850)),
    ("etag", text(max_length=80)),
    ("size", integer(ge=0)),
)
_MESSAGE_RULES: _Rules = (
    ("v", _version),
    ("task_id", _safe_id),
    ("user_id", _safe_id),
    ("pipeline", text(min_length=1, max_length=64)),
    ("stage", _stage),
    ("input", _input),
    ("vendor_task_id", optional(text(max_length=128))),
    ("audit_job_id", optional(text(max_length=256))),
    ("seq", _hops),
    ("attempt", _hops),
    ("polls", _hops),
    ("created_at", _time),
    ("deadline_at", _time),
    ("not_before", optional(_time)),
)
_INPUT_RULES_BY_NAME = dict(_INPUT_RULES)
_MESSAGE_RULES_BY_NAME = dict(_MESSAGE_RULES)
#: the same rules for a decoded body, where ``input`` is the decoded object
_MESSAGE_JSON_RULES = {**_MESSAGE_RULES_BY_NAME, "input": _input_from_json}


def _defaults(cls: type) -> dict[str, Any]:
    """The default of each field of ``cls`` that has one."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


_INPUT_DEFAULTS = _defaults(InputObject)
_MESSAGE_DEFAULTS = _defaults(JobMessage)

_T = TypeVar("_T")


def _check(values: dict[str, Any], rules: _Rules) -> None:
    """Check (and convert, in place) every field value of a new message or input; FieldError names the field."""
    name = ""
    try:
        for name, rule in rules:
            values[name] = rule(values[name])
    except FieldError as exc:
        raise exc.under(name) from None


def _decoded(cls: type[_T], data: object, rules: dict[str, Check[Any]], defaults: dict[str, Any]) -> _T:
    """A ``cls`` holding decoded JSON ``data`` (converted in place: it is the caller's own, fresh from
    ``json.loads``), each present value checked once, absent ones their ``defaults``; the constructor is not run.
    Unknown keys are refused, missing required ones named."""
    if type(data) is not dict:
        raise FieldError("input should be an object")
    name = ""
    try:
        for name, value in data.items():
            data[name] = rules[name](value)
    except FieldError as exc:
        raise exc.under(name) from None
    except KeyError:
        raise FieldError(UNKNOWN, (name,)) from None
    values = data if len(data) == len(rules) else {**defaults, **data}
    if len(values) != len(rules):
        raise FieldError(MISSING, (next(name for name in rules if name not in values),))
    return _instance(cls, values)


def _instance(cls: type[_T], values: dict[str, Any]) -> _T:
    instance = object.__new__(cls)
    instance.__dict__.update(values)  # past the frozen dataclass's __setattr__
    return instance
