"""The append-only audit trail of state-changing operator commands, kept beside the ledger.

Two backends behind one tiny protocol, opened from the ledger URL (``RELAY_LEDGER``):

* ``sqlite:///path/ledger.db``: the table ``operator_audit`` in the ledger file itself (same backups, same
  retention of the file; rows are never updated or deleted by scf-relay, and ``Ledger.prune`` leaves them).
* ``redis://...?prefix=P``: the stream ``P:audit`` (``XADD`` only, never trimmed; no TTL).

An entry says when, who (``RELAY_OPERATOR``, else the OS user), the command line, the ids it touched, its
counts and its result. Backend failures raise :class:`~jobqueue.errors.BackendUnavailable`.
"""

from __future__ import annotations

import abc
import contextlib
import getpass
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.urls import sqlite_path

BUSY_TIMEOUT_S = 10.0


def operator_name() -> str:
    """Who acts: ``RELAY_OPERATOR`` when set, else the OS user."""
    named = os.environ.get("RELAY_OPERATOR", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class AuditEntry:
    """One state-changing command. ``at`` is unix seconds; ``result`` is ok | partial | failed | interrupted."""

    at: float
    operator: str
    command: str
    ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    result: str = "ok"
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> AuditEntry:
        data = json.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class AuditTrail(abc.ABC):
    """Where audit entries go; append-only."""

    @abc.abstractmethod
    def append(self, entry: AuditEntry) -> None:
        """Store ``entry`` durably after every earlier one. Raises BackendUnavailable."""

    @abc.abstractmethod
    def recent(self, limit: int = 50) -> list[AuditEntry]:
        """The last ``limit`` entries, newest first. Raises BackendUnavailable."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the trail is kept, for operators (no password)."""

    def close(self) -> None:
        """Release connections (idempotent)."""


class SqliteAuditTrail(AuditTrail):
    """The table ``operator_audit`` in the SQLite ledger file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with _sqlite_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS operator_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " at REAL NOT NULL, entry TEXT NOT NULL)"
            )

    @property
    def where(self) -> str:
        return f"{self.path} table operator_audit"

    def append(self, entry: AuditEntry) -> None:
        with self._lock, _sqlite_errors():
            self._conn.execute("INSERT INTO operator_audit (at, entry) VALUES (?, ?)", (entry.at, entry.to_json()))

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        with self._lock, _sqlite_errors():
            rows = self._conn.execute("SELECT entry FROM operator_audit ORDER BY seq DESC LIMIT ?", (limit,))
            return [AuditEntry.from_json(r[0]) for r in rows.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class RedisAuditTrail(AuditTrail):
    """The stream ``<prefix>:audit`` beside the Redis ledger's keys."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self.key = f"{prefix}:audit"

    @property
    def where(self) -> str:
        return f"redis stream {self.key}"

    def append(self, entry: AuditEntry) -> None:
        with _redis_errors():
            self._client.xadd(self.key, {"entry": entry.to_json()})

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        with _redis_errors():
            rows = self._client.xrevrange(self.key, count=limit)
        return [AuditEntry.from_json(fields["entry"]) for _, fields in rows]

    def close(self) -> None:
        self._client.close()


def open_audit(ledger_url: str) -> AuditTrail:
    """The trail beside the ledger at ``ledger_url``. Raises QueueConfigError naming RELAY_LEDGER."""
    scheme = urlsplit(ledger_url).scheme
    if scheme == "sqlite":
        path, _ = sqlite_path(ledger_url, "RELAY_LEDGER", frozenset({"retention_s"}))
        return SqliteAuditTrail(path)
    if scheme in ("redis", "rediss"):
        import redis

        from jobqueue.ledger.redis import split_url

        client_url, prefix, _ = split_url(ledger_url)
        return RedisAuditTrail(redis.Redis.from_url(client_url, decode_responses=True), prefix)
    raise QueueConfigError(f"RELAY_LEDGER: no audit trail for scheme {scheme!r} (use sqlite:// or redis://)")


@contextlib.contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise BackendUnavailable(f"audit trail (sqlite): {exc}") from exc


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    import redis

    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise BackendUnavailable(f"audit trail (redis): {type(exc).__name__}: {exc}") from exc
