"""Validation of the ids that become object keys and log fields.

User and task ids come from object keys that users control; they are checked here before they
are used to build any key, so ``input/../x/...`` or ``input/a/b%2F..`` never reaches the store.
"""

from __future__ import annotations

import re

#: a safe id, used with ``fullmatch`` ("$" would admit a final "\n")
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class InvalidId(ValueError):
    """An id is empty, too long, or has characters outside ``[A-Za-z0-9_-]``."""


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe id (1-64 chars of ``[A-Za-z0-9_-]``, not starting with ``-``/``_``)."""
    if not isinstance(value, str) or not SAFE_ID.fullmatch(value):
        raise InvalidId(f"{what} {value!r} is not a safe id (1-64 of A-Z a-z 0-9 _ -)")
    return value


def is_safe_id(value: str) -> bool:
    return isinstance(value, str) and bool(SAFE_ID.fullmatch(value))


def output_prefix(user_id: str, task_id: str) -> str:
    """``output/{userId}/{taskId}/``: where a task's passing results are published."""
    return f"output/{check_id(user_id, 'user id')}/{check_id(task_id, 'task id')}/"


def staging_prefix(user_id: str, task_id: str) -> str:
    """``staging/{userId}/{taskId}/``: private; results wait here until moderation passes."""
    return f"staging/{check_id(user_id, 'user id')}/{check_id(task_id, 'task id')}/"


def output_key(user_id: str, task_id: str, name: str) -> str:
    return output_prefix(user_id, task_id) + _check_name(name)


def staging_key(user_id: str, task_id: str, name: str) -> str:
    return staging_prefix(user_id, task_id) + _check_name(name)


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _check_name(name: str) -> str:
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise InvalidId(f"file name {name!r} is not safe")
    return name
