"""RunningHub's answers, decoded: error codes to :mod:`vendors.errors`, bodies to :class:`VendorStatus`.

Pure functions over decoded JSON, kept apart from the HTTP client so that every code and
shape is visible in one place. A body of the wrong shape is "vendor garbage": :class:`VendorUnavailable`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vendors.base import VendorOutput, VendorState, VendorStatus
from vendors.errors import (
    AuthError,
    BalanceError,
    InputRejected,
    VendorBusy,
    VendorConfigError,
    VendorError,
    VendorTaskFailed,
    VendorUnavailable,
)

CODE_OK = 0
CODE_RUNNING = 804
CODE_FAILED = 805
CODE_QUEUED = 813
CODE_TOO_LARGE = 809

_ERROR_CLASSES: dict[type[VendorError], tuple[int, ...]] = {
    AuthError: (801, 802, 806, 811),
    BalanceError: (812,),
    VendorConfigError: (301, 380, 433, 803, 901),  # our workflow id or node mapping is wrong
    VendorBusy: (415, 421, 814, 1003, 1520),
    InputRejected: (CODE_TOO_LARGE,),
    VendorUnavailable: (500, 808, 1005, 1010, 1011, 1012),
    VendorTaskFailed: (423, 807, 1501, 1505),  # task not found; vendor-side moderation block
}
ERROR_BY_CODE: dict[int, type[VendorError]] = {code: cls for cls, codes in _ERROR_CLASSES.items() for code in codes}

NO_OUTPUT = "finished without output"
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Envelope:
    """A legacy answer: ``{code, msg, data}``."""

    code: int
    msg: str
    data: Any


def garbage(op: str, what: str) -> VendorUnavailable:
    return VendorUnavailable(f"runninghub {op}: vendor garbage: {what}")


def as_code(value: Any) -> int | None:
    """A vendor code as an int (it may come as a number or a string of digits); ``None`` if it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_envelope(op: str, payload: Any) -> Envelope:
    code = as_code(payload.get("code")) if isinstance(payload, dict) else None
    if code is None:
        raise garbage(op, "no {code, msg, data} envelope")
    msg = payload.get("msg") or payload.get("message") or ""
    return Envelope(code, str(msg)[:200], payload.get("data"))


def error_for(op: str, code: int, msg: str = "") -> VendorError:
    """The exception for a non-zero vendor code; an unknown code is transient and keeps its number."""
    cls = ERROR_BY_CODE.get(code, VendorUnavailable)
    known = "" if code in ERROR_BY_CODE else " (unknown code)"
    return cls(f"runninghub {op}: code {code} {msg}{known}".rstrip(), code=code)


def task_id_of(data: Any) -> str | None:
    """``data.taskId`` as a decimal string; a number stays exact (JSON ints decode to int, never float)."""
    value = data.get("taskId") if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None  # missing, or a float that may have lost digits


def node_errors_of(data: Any) -> dict:
    """``promptTips.node_errors`` (``promptTips`` is a JSON string, or already an object); ``{}`` if none."""
    tips = data.get("promptTips") if isinstance(data, dict) else None
    if isinstance(tips, str):
        try:
            tips = json.loads(tips)
        except ValueError:
            return {}
    errors = tips.get("node_errors") if isinstance(tips, dict) else None
    return errors if isinstance(errors, dict) and errors else {}


@dataclass(frozen=True)
class WorkflowNode:
    """One node of a workflow's API-format JSON: its ComfyUI ``class_type`` and its ``inputs`` keys."""

    class_type: str
    fields: frozenset[str]


def workflow_nodes_of(data: Any) -> dict[str, WorkflowNode]:
    """``getJsonApiFormat``'s ``data.prompt`` (a JSON string, or already an object) as node id -> node.

    The prompt is ComfyUI's API format: ``{"<node id>": {"class_type", "inputs": {...}, "_meta"}}``.
    Raises :class:`VendorUnavailable` (garbage) for any other shape."""
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except ValueError:
            raise garbage("workflow", "data.prompt is not JSON") from None
    if not isinstance(prompt, dict):
        raise garbage("workflow", "no data.prompt object")
    nodes = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            raise garbage("workflow", f"node {node_id} has no inputs object")
        nodes[str(node_id)] = WorkflowNode(str(node.get("class_type") or "?"), frozenset(map(str, inputs)))
    return nodes


def failure_detail(reason: Any, fallback: str = "task failed") -> str:
    """One short line from a ``failedReason``: ``node: ExceptionType: first line of the message``."""
    if isinstance(reason, str):
        try:
            reason = json.loads(reason)
        except ValueError:
            return reason.strip().splitlines()[0][:_DETAIL_CHARS] if reason.strip() else fallback
    if not isinstance(reason, dict):
        return fallback
    node = reason.get("node_name") or reason.get("node_id")
    message = str(reason.get("exception_message") or "").strip()
    first_line = message.splitlines()[0] if message else ""
    parts = [str(p) for p in (node, reason.get("exception_type"), first_line) if p]
    return ": ".join(parts)[:_DETAIL_CHARS] or fallback


def status_from_outputs(envelope: Envelope) -> VendorStatus:
    """The state of a task from ``/task/openapi/outputs``; other codes raise their error."""
    code, data = envelope.code, envelope.data
    if code == CODE_OK:
        if data is None:  # the official ComfyUI client reads code 0 + data null as "still running" (§5)
            return VendorStatus(VendorState.RUNNING, raw_code=code)
        if not isinstance(data, list):
            raise garbage("status", "outputs data is not a list")
        if not data:
            return VendorStatus(VendorState.FAILED, detail=NO_OUTPUT, raw_code=code)
        outputs = tuple(_output(item) for item in data)
        return VendorStatus(VendorState.SUCCEEDED, outputs=outputs, raw_code=code)
    if code == CODE_RUNNING:
        return VendorStatus(VendorState.RUNNING, raw_code=code)
    if code == CODE_QUEUED:
        return VendorStatus(VendorState.QUEUED, raw_code=code)
    if code == CODE_FAILED:
        reason = data.get("failedReason") if isinstance(data, dict) else None
        return VendorStatus(VendorState.FAILED, detail=failure_detail(reason), raw_code=code)
    raise error_for("status", code, envelope.msg)


def _output(item: Any) -> VendorOutput:
    """One ``{fileUrl, fileType, nodeId}`` of a finished task's outputs."""
    url = item.get("fileUrl") if isinstance(item, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise garbage("status", "an output without a fileUrl")
    node_id = item.get("nodeId")
    return VendorOutput(
        url=url, file_type=str(item.get("fileType") or ""), node_id=None if node_id is None else str(node_id)
    )
