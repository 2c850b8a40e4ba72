"""The user-facing reasons a task fails with (the backend shows them to sellers); vendor detail goes to logs only.

Apart from :mod:`relay_core.domain` (which re-exports :class:`ErrorReason`) because the error tree needs the
reasons and nothing else of it: the producer shim, which loads the error tree, never builds an outcome.
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
