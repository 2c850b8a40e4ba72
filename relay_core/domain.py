"""Domain values every layer shares: the user-facing error reasons (:class:`ErrorReason`, defined in
:mod:`relay_core.reasons`) and a task's terminal outcome."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from relay_core.reasons import ErrorReason


class Status(str, enum.Enum):
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """A task's terminal outcome: exactly what the backend will be told."""

    status: Status
    result_keys: tuple[str, ...] = ()
    error_reason: str | None = None
    vendor_task_id: str | None = None
    detail: str = field(default="", compare=False)  # for operators' eyes: never sent to the backend

    @classmethod
    def failed(cls, reason: ErrorReason, detail: str = "", vendor_task_id: str | None = None) -> Outcome:
        return cls(Status.FAILED, error_reason=reason.value, vendor_task_id=vendor_task_id, detail=detail)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> Outcome:
        return cls.from_dict(json.loads(raw))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (:meth:`dumps` without the encoding)."""
        return {
            "detail": self.detail,
            "error_reason": self.error_reason,
            "result_keys": list(self.result_keys),
            "status": self.status.value,
            "vendor_task_id": self.vendor_task_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        """Inverse of :meth:`to_dict`."""
        return cls(
            status=Status(data["status"]),
            result_keys=tuple(data.get("result_keys") or ()),
            error_reason=data.get("error_reason"),
            vendor_task_id=data.get("vendor_task_id"),
            detail=data.get("detail") or "",
        )
