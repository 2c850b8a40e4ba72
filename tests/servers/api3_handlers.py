"""Default behaviour of the local API 3.0 server: IMS, VM, TDMQ (CMQ control plane) and SCF.

Each handler takes the request's JSON params and returns the ``Response`` fields (without ``RequestId``) or
raises :class:`ApiError`. State lives in small objects the tests can reach through the server:

* :class:`ImsImages`: ``ImageModeration`` blocks any image whose bytes hold the block marker (from
  ``FileContent`` base64, or ``FileUrl`` fetched with httpx).
* :class:`VmVideos`: ``CreateVideoModerationTask`` / ``DescribeTaskDetail``; a task answers ``PENDING``, then
  ``RUNNING`` (``pending_polls`` in all), then ``FINISH``. The verdict comes from ``outcomes[data_id]`` if
  set, else from the marker in the object's bytes when ``object_reader(bucket, key)`` is given, else ``Pass``.
* :class:`CmqQueues`: an in-memory registry of queue attributes with counts the test sets.
* :class:`ScfFunctions`: ``Invoke`` records each invocation; ``GetFunction`` and ``ListTriggers`` answer from
  ``functions`` (name -> configuration) and ``triggers`` (name -> trigger list) the test sets.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from moderation.local import BLOCK_MARKER

DATA_ID = re.compile(r"^[A-Za-z0-9_\-@#]{1,64}$")
QUEUE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
BIZ_TYPE = re.compile(r"[A-Za-z0-9_]{3,32}")  # VM: BizType is 3-32 letters, digits and _
FILE_CONTENT_MAX_CHARS = 10 * 1024 * 1024
FILE_URL_MAX_BYTES = 30 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message or code


def _suggest(data: bytes) -> dict[str, Any]:
    if BLOCK_MARKER in data:
        return {"Suggestion": "Block", "Label": "Porn", "SubLabel": "Marker", "Score": 99}
    return {"Suggestion": "Pass", "Label": "Normal", "SubLabel": "", "Score": 0}


def _data_id(params: dict[str, Any]) -> str:
    data_id = params.get("DataId", "")
    if data_id and not DATA_ID.match(data_id):
        raise ApiError("InvalidParameterValue.InvalidDataId", "DataId: letters, digits, _-@#, at most 64")
    return data_id


def _fetch(url: str, limit: int) -> bytes:
    try:
        with httpx.stream("GET", url, timeout=10) as response:
            if response.status_code != 200:
                raise ApiError("ResourceUnavailable.ImageDownloadError", f"download answered {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise ApiError("InvalidParameterValue.InvalidFileContentSize", "file over the size limit")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise ApiError("ResourceUnavailable.ImageDownloadError", f"download failed: {type(exc).__name__}") from None


class ImsImages:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []  # {"DataId", "source": "content"|"url", "size"}

    def image_moderation(self, params: dict[str, Any]) -> dict[str, Any]:
        data_id = _data_id(params)
        content, url = params.get("FileContent"), params.get("FileUrl")
        if bool(content) == bool(url):
            raise ApiError("InvalidParameter", "exactly one of FileContent and FileUrl")
        if content:
            if len(content) > FILE_CONTENT_MAX_CHARS:
                raise ApiError("InvalidParameterValue.InvalidFileContentSize", "FileContent over 10 MB")
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError("InvalidParameterValue.InvalidImageContent", "FileContent is not base64") from None
        else:
            data = _fetch(url, FILE_URL_MAX_BYTES)
        self.seen.append({"DataId": data_id, "source": "content" if content else "url", "size": len(data)})
        return {**_suggest(data), "DataId": data_id, "BizType": params.get("BizType", ""), "LabelResults": []}


@dataclass
class VideoTask:
    task_id: str
    data_id: str
    input: dict[str, Any]
    polls: int = 0
    outcome: tuple[str, str] | None = None  # (Status, Suggestion) once decided


class VmVideos:
    def __init__(self, pending_polls: int = 2, try_in_s: int = 3) -> None:
        self.pending_polls = pending_polls
        self.try_in_s = try_in_s
        self.outcomes: dict[str, tuple[str, str]] = {}  # data_id -> (Status, Suggestion), e.g. ("ERROR", "")
        self.object_reader: Callable[[str, str], bytes] | None = None
        self.tasks: dict[str, VideoTask] = {}
        self.biz_types: set[str] | None = None  # when set, other BizTypes are refused (a policy the console lacks)
        self._lock = threading.Lock()

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        biz_type = params.get("BizType")
        if not biz_type:  # required by the VM API (docs/platform.md §4)
            raise ApiError("MissingParameter", "The request is missing a required parameter `BizType`.")
        if not isinstance(biz_type, str) or not BIZ_TYPE.fullmatch(biz_type):
            raise ApiError("InvalidParameterValue", f"BizType {biz_type!r} is not 3-32 letters, digits or _")
        if self.biz_types is not None and biz_type not in self.biz_types:
            raise ApiError("InvalidParameterValue.BizType", f"BizType {biz_type} does not exist")
        if params.get("Type") != "VIDEO":
            raise ApiError("InvalidParameterValue", "Type must be VIDEO here")
        results = []
        for task in params.get("Tasks") or []:
            data_id = _data_id(task)
            source = task.get("Input") or {}
            if source.get("Type") == "COS" and not all(
                (source.get("BucketInfo") or {}).get(k) for k in ("Bucket", "Region", "Object")
            ):
                raise ApiError("InvalidParameter", "BucketInfo needs Bucket, Region and Object")
            task_id = f"vm-{uuid.uuid4().hex[:16]}"
            with self._lock:
                self.tasks[task_id] = VideoTask(task_id, data_id, source)
            results.append({"DataId": data_id, "TaskId": task_id, "Code": "OK", "Message": ""})
        if not results:
            raise ApiError("MissingParameter", "Tasks is empty")
        return {"Results": results}

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            task = self.tasks.get(params.get("TaskId", ""))
            if task is None:
                raise ApiError("ResourceNotFound", "no such TaskId")
            task.polls += 1
            polls = task.polls
        base = {"TaskId": task.task_id, "DataId": task.data_id, "Type": "VIDEO"}
        if polls <= self.pending_polls:
            status = "PENDING" if polls == 1 else "RUNNING"
            return {**base, "Status": status, "TryInSeconds": self.try_in_s}
        status, suggestion = self._outcome(task)
        if status != "FINISH":
            return {
                **base,
                "Status": status,
                "ErrorType": "DECODE_ERROR",
                "ErrorDescription": "emulated failure",
            }
        label = "Porn" if suggestion == "Block" else "Normal"
        return {**base, "Status": "FINISH", "Suggestion": suggestion, "Label": label}

    def _outcome(self, task: VideoTask) -> tuple[str, str]:
        if task.outcome is None:
            if task.data_id in self.outcomes:
                task.outcome = self.outcomes[task.data_id]
            else:
                task.outcome = ("FINISH", _suggest(self._content(task.input))["Suggestion"])
        return task.outcome

    def _content(self, source: dict[str, Any]) -> bytes:
        if source.get("Type") == "URL":
            return _fetch(source.get("Url", ""), 1 << 30)
        if self.object_reader is None:
            return b""
        info = source.get("BucketInfo") or {}
        return self.object_reader(info["Bucket"], info["Object"])


_QUEUE_DEFAULTS = {
    "MaxMsgHeapNum": 10_000_000,
    "PollingWaitSeconds": 0,
    "VisibilityTimeout": 30,
    "MaxMsgSize": 1_048_576,
    "MsgRetentionSeconds": 3600,
    "RewindSeconds": 0,
}
_QUEUE_RANGES = {
    "VisibilityTimeout": (1, 43_200),
    "MsgRetentionSeconds": (30, 43_200),
    "RewindSeconds": (0, 1_296_000),
    "PollingWaitSeconds": (0, 30),
    "MaxMsgSize": (1024, 1_048_576),
    "MaxReceiveCount": (1, 1000),
    "MaxTimeToLive": (300, 43_200),
    "Policy": (0, 1),
}
_DEAD_LETTER_FIELDS = ("DeadLetterQueueName", "Policy", "MaxReceiveCount", "MaxTimeToLive")


@dataclass
class CmqQueueState:
    queue_id: str
    attributes: dict[str, Any]
    dead_letter: dict[str, Any] | None = None  # {"DeadLetterQueue", "Policy", "MaxReceiveCount", "MaxTimeToLive"}
    counts: dict[str, int] = field(default_factory=lambda: {"ActiveMsgNum": 0, "InactiveMsgNum": 0, "DelayMsgNum": 0})
    rewound_to: list[int] = field(default_factory=list)


class CmqQueues:
    def __init__(self) -> None:
        self.queues: dict[str, CmqQueueState] = {}  # by lower-cased name: CMQ names are case-insensitive
        self._lock = threading.Lock()

    def set_counts(self, name: str, *, active: int = 0, inactive: int = 0, delayed: int = 0) -> None:
        self.queues[name.lower()].counts = {
            "ActiveMsgNum": active,
            "InactiveMsgNum": inactive,
            "DelayMsgNum": delayed,
        }

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("QueueName", "")
        if not QUEUE_NAME.match(name) or name.endswith(("-retry", "-dlq")):
            raise ApiError("InvalidParameterValue", f"invalid queue name {name!r}")
        _check_ranges(params)
        with self._lock:
            if name.lower() in self.queues:
                raise ApiError("ResourceInUse.Queue", f"queue {name} exists")
            attributes = {**_QUEUE_DEFAULTS, **{k: v for k, v in params.items() if k in _QUEUE_DEFAULTS}}
            state = CmqQueueState(f"cmqq-{uuid.uuid4().hex[:10]}", {"QueueName": name, **attributes})
            state.dead_letter = self._dead_letter(params, None)
            self.queues[name.lower()] = state
        return {"QueueId": state.queue_id}

    def modify(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_ranges(params)
        with self._lock:
            state = self._get(params.get("QueueName", ""))
            state.attributes.update({k: v for k, v in params.items() if k in _QUEUE_DEFAULTS})
            state.dead_letter = self._dead_letter(params, state.dead_letter)
        return {}

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            state = self._get(params.get("QueueName", ""))
            detail = {
                **state.attributes,
                **state.counts,
                "QueueId": state.queue_id,
                "RewindMsgNum": 0,
                "DeadLetterPolicy": dict(state.dead_letter) if state.dead_letter else None,
                "CreateTime": 0,
                "LastModifyTime": 0,
            }
        return {"QueueDescribe": detail}

    def rewind(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            state = self._get(params.get("QueueName", ""))
            if not state.attributes.get("RewindSeconds"):
                raise ApiError("OperationDenied", "rewind is not enabled on this queue")
            state.rewound_to.append(int(params.get("StartConsumeTime") or 0))
        return {}

    def _get(self, name: str) -> CmqQueueState:
        state = self.queues.get(name.lower())
        if state is None:
            raise ApiError("ResourceNotFound", f"queue {name!r} does not exist")
        return state

    def _dead_letter(self, params: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any] | None:
        if not any(k in params for k in _DEAD_LETTER_FIELDS):
            return current
        name = params.get("DeadLetterQueueName") or (current or {}).get("DeadLetterQueue")
        if not name or name.lower() not in self.queues:
            raise ApiError("ResourceNotFound", f"dead-letter queue {name!r} does not exist")
        policy = {**(current or {}), "DeadLetterQueue": name}
        policy.update({k: params[k] for k in ("Policy", "MaxReceiveCount", "MaxTimeToLive") if k in params})
        if policy.get("Policy", 0) == 0 and not policy.get("MaxReceiveCount"):
            raise ApiError("InvalidParameter", "Policy 0 needs MaxReceiveCount")
        return policy


def _check_ranges(params: dict[str, Any]) -> None:
    for name, (low, high) in _QUEUE_RANGES.items():
        if name in params and not (isinstance(params[name], int) and low <= params[name] <= high):
            raise ApiError("InvalidParameterValue", f"{name}={params[name]!r} outside {low}..{high}")


@dataclass
class Invocation:
    function_name: str
    namespace: str
    invocation_type: str
    client_context: str
    qualifier: str
    at: float


def scf_function(name: str, handler: str, runtime: str, timeout: int, memory: int) -> dict[str, Any]:
    """A ``GetFunction`` answer's main fields (scf 2018-04-16), as the SDK's ``GetFunctionResponse`` reads them."""
    return {
        "FunctionName": name,
        "Namespace": "default",
        "Handler": handler,
        "Runtime": runtime,
        "Timeout": timeout,
        "MemorySize": memory,
        "Status": "Active",
        "Qualifier": "$LATEST",
        "Environment": {"Variables": []},
        "Triggers": [],
    }


def scf_trigger(kind: str, name: str, desc: str, enable: int = 1) -> dict[str, Any]:
    """A ``ListTriggers`` ``TriggerInfo``: ``TriggerDesc`` is a cron (timer) or a JSON string (cos)."""
    return {"Type": kind, "TriggerName": name, "TriggerDesc": desc, "Enable": enable, "Qualifier": "$DEFAULT"}


class ScfFunctions:
    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self.known: set[str] | None = None  # when set, other names answer ResourceNotFound.Function
        self.functions: dict[str, dict[str, Any]] = {}  # GetFunction: name -> configuration
        self.triggers: dict[str, list[dict[str, Any]]] = {}  # ListTriggers: name -> TriggerInfo list

    def _configured(self, params: dict[str, Any]) -> str:
        name = params.get("FunctionName", "")
        if not name:
            raise ApiError("MissingParameter", "FunctionName")
        if name not in self.functions:
            raise ApiError("ResourceNotFound.Function", f"function {name} does not exist")
        return str(name)

    def get_function(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.functions[self._configured(params)])

    def list_triggers(self, params: dict[str, Any]) -> dict[str, Any]:
        triggers = self.triggers.get(self._configured(params), [])
        return {"TotalCount": len(triggers), "Triggers": [dict(t) for t in triggers]}

    def invoke(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("FunctionName", "")
        if not name:
            raise ApiError("MissingParameter", "FunctionName")
        if self.known is not None and name not in self.known:
            raise ApiError("ResourceNotFound.Function", f"function {name} does not exist")
        kind = params.get("InvocationType") or "RequestResponse"
        self.invocations.append(
            Invocation(
                name,
                params.get("Namespace") or "default",
                kind,
                params.get("ClientContext") or "",
                params.get("Qualifier") or "$LATEST",
                time.time(),
            )
        )
        result = {"FunctionRequestId": uuid.uuid4().hex, "InvokeResult": 0}
        if kind != "Event":
            result.update(RetMsg="null", Log="", ErrMsg="", MemUsage=0, Duration=1.0, BillDuration=1)
        return {"Result": result}
