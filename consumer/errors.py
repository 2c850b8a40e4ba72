"""How a step ends when it does not simply hand on to its successor.

::

    StepError
    ├── RetryStep        a transient fault: run this stage again later (bounded per stage, see dispatch)
    ├── TaskFailure      the task itself failed: record ``failed`` with a user-facing reason and report it
    └── DeadLetterStep   our side is wrong (key, balance, workflow id, bucket access, bug): dead-letter,
                         no report, so fixing the configuration and redriving saves the user's task

Library errors are translated into these in :mod:`consumer.dispatch`; a step may also raise them itself.
"""

from __future__ import annotations

import enum


class ErrorReason(str, enum.Enum):
    """User-facing reasons (the backend shows them to sellers). Vendor detail goes to logs only."""

    TIMEOUT = "生成超时"
    BLOCKED = "内容违规"
    FAILED = "生成失败"
    INVALID_INPUT = "输入文件无效"
    GIVEN_UP = "处理失败"  # an operator failed the task from the dead-letter queue


class StepError(Exception):
    retryable = False


class RetryStep(StepError):
    retryable = True

    def __init__(self, reason: str, *, delay_s: float | None = None, restart_audit: bool = False) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.restart_audit = restart_audit  # the moderation job died: the retry must start a new one


class TaskFailure(StepError):
    def __init__(self, reason: ErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class DeadLetterStep(StepError):
    pass
