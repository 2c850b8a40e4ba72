"""Structured JSON logs: one object per line, the task id on every line of a step.

``bind(task_id=..., stage=...)`` is a context manager that stamps the fields on every record
logged inside it (a ``contextvars`` value, so threads and workers do not mix them up).
Every message and field value passes :func:`redact` so secrets registered with
:func:`register_secret` (API keys, COS keys, the callback secret) never reach a log line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("relay_log_context", default=None)
_secrets: set[str] = set()
# Query strings of signed URLs carry credentials (q-signature, sign=, token=...): never log them.
_SIGNED_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` masks it wherever it appears (ignores short values)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    """Mask registered secrets and the query strings of URLs."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return _SIGNED_QUERY.sub(r"\1?***", text)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log record emitted inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """``{"ts":..., "level":..., "logger":..., "msg":..., <bound fields>, <extra=...>}``."""

    _reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update(_context.get() or {})
        for key, value in vars(record).items():
            if key not in self._reserved and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return redact(_ENCODER.encode(entry))


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # built once: json.dumps builds one per call
_configured = False


def setup(level: str | int = "INFO", stream: Any = None) -> None:
    """Send the ``relay`` loggers to ``stream`` (stderr) as JSON lines. Idempotent."""
    global _configured
    root = logging.getLogger("relay")
    root.setLevel(level if isinstance(level, int) else level.upper())
    if _configured:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.propagate = False
    _configured = True


def get(name: str) -> logging.Logger:
    """A logger under the ``relay`` tree, e.g. ``get("consumer")`` -> ``relay.consumer``."""
    return logging.getLogger(f"relay.{name}")


def now() -> float:
    """Wall clock in unix seconds (one place to read it, so tests can see where time comes from)."""
    return time.time()
