"""The embedded task ledger: one SQLite table, safe across threads and processes.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (everything after ``sqlite:///`` is
the path, as in SQLAlchemy), optional ``?retention_s=N`` (what :meth:`Ledger.prune` keeps; 30 days by
default); parent folders are created.

One row per task: its version, the record as JSON, and the columns the indexes need. A compare-and-set is
one ``UPDATE ... WHERE version = ?`` (an insert is ``INSERT OR IGNORE``), so the row and its index columns
change together; ``busy_timeout`` makes a contended writer wait instead of failing, WAL keeps readers off
the writers' lock. ``open_deadline`` is set only for tasks without an outcome and ``unreported_since`` only
for tasks with an outcome not yet reported, so each partial index holds exactly the tasks its query lists.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.ledger.base import DEFAULT_RETENTION_S, Ledger
from jobqueue.ledger.record import RuntimeEstimate, TaskRecord
from jobqueue.urls import sqlite_path

BUSY_TIMEOUT_S = 10.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS task_records (
        task_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        record TEXT NOT NULL,
        open_deadline REAL,
        unreported_since REAL,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS task_records_open_by_deadline
        ON task_records (open_deadline, task_id) WHERE open_deadline IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS task_records_unreported
        ON task_records (unreported_since, task_id) WHERE unreported_since IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS task_records_by_created ON task_records (created_at)",
    """CREATE TABLE IF NOT EXISTS runtime_estimates (
        pipeline TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        estimate TEXT NOT NULL
    )""",
)
#: added after the first release: a ledger file made before gets the column on open
_VENDOR_COLUMN = "ALTER TABLE task_records ADD COLUMN vendor_key TEXT"
_VENDOR_INDEX = (
    "CREATE INDEX IF NOT EXISTS task_records_by_vendor ON task_records (vendor_key) WHERE vendor_key IS NOT NULL"
)
BY_VENDOR = (
    "SELECT version, record FROM task_records INDEXED BY task_records_by_vendor"
    " WHERE vendor_key IS NOT NULL AND vendor_key = ? LIMIT 1"
)
# INDEXED BY: SQLite refuses the query rather than fall back to scanning the table.
OPEN_BY_DEADLINE = (
    "SELECT version, record FROM task_records INDEXED BY task_records_open_by_deadline"
    " WHERE open_deadline IS NOT NULL AND open_deadline < ? ORDER BY open_deadline, task_id LIMIT ?"
)
UNREPORTED = (
    "SELECT version, record FROM task_records INDEXED BY task_records_unreported"
    " WHERE unreported_since IS NOT NULL AND unreported_since < ? ORDER BY unreported_since, task_id LIMIT ?"
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3 errors (locked, busy, disk I/O, ...) into the jobqueue error tree: worth a retry."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"sqlite ledger: {exc}") from exc


class SqliteLedger(Ledger):
    """The ledger in one SQLite file. One connection per instance, shared by its threads under a lock."""

    def __init__(self, path: str | Path, *, retention_s: int = DEFAULT_RETENTION_S) -> None:
        super().__init__(retention_s=retention_s)
        self.path = Path(path)
        self._lock = threading.RLock()
        with _translated():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._setup()

    @classmethod
    def from_url(cls, url: str) -> SqliteLedger:
        path, options = sqlite_path(url, "RELAY_LEDGER", frozenset({"retention_s"}))
        retention = options.get("retention_s", str(DEFAULT_RETENTION_S))
        if not retention.isdigit() or int(retention) <= 0:
            raise QueueConfigError(f"RELAY_LEDGER: retention_s={retention!r} is not a positive integer")
        return cls(path, retention_s=int(retention))

    def __repr__(self) -> str:
        return f"SqliteLedger({str(self.path)!r})"

    def _setup(self) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Switching to WAL needs a moment alone with the file; a process opening it at the same time
        # may get SQLITE_BUSY without the busy handler being consulted, so retry briefly.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                columns = {row[1] for row in self._conn.execute("PRAGMA table_info(task_records)")}
                if "vendor_key" not in columns:
                    self._conn.execute(_VENDOR_COLUMN)
                self._conn.execute(_VENDOR_INDEX)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _run(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        """One statement in autocommit mode: atomic on its own, under the connection's lock."""
        with self._lock, _translated():
            return self._conn.execute(sql, params)

    def _records(self, sql: str, params: tuple[object, ...]) -> list[TaskRecord]:
        with self._lock, _translated():
            rows = self._conn.execute(sql, params).fetchall()
        return [TaskRecord.from_json(raw, version) for version, raw in rows]

    # -- primitives ------------------------------------------------------------------------------
    def _load(self, task_id: str) -> TaskRecord | None:
        records = self._records("SELECT version, record FROM task_records WHERE task_id = ?", (task_id,))
        return records[0] if records else None

    def _save(self, record: TaskRecord, expected_version: int) -> bool:
        columns = (
            record.version,
            record.to_json(),
            record.open_deadline(),
            record.unreported_since(),
            record.vendor_key(),
        )
        if expected_version == 0:
            cursor = self._run(
                "INSERT OR IGNORE INTO task_records (version, record, open_deadline, unreported_since, vendor_key,"
                " created_at, task_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*columns, record.created_at, record.task_id),
            )
        else:
            cursor = self._run(
                "UPDATE task_records SET version = ?, record = ?, open_deadline = ?, unreported_since = ?,"
                " vendor_key = ? WHERE task_id = ? AND version = ?",
                (*columns, record.task_id, expected_version),
            )
        return cursor.rowcount == 1

    def _open_by_deadline(self, before: float, limit: int) -> list[TaskRecord]:
        return self._records(OPEN_BY_DEADLINE, (before, limit))

    def _unreported(self, before: float, limit: int) -> list[TaskRecord]:
        return self._records(UNREPORTED, (before, limit))

    def _by_vendor_task(self, vendor_task_id: str) -> TaskRecord | None:
        records = self._records(BY_VENDOR, (vendor_task_id,))
        return records[0] if records else None

    def _load_estimate(self, pipeline: str) -> RuntimeEstimate | None:
        with self._lock, _translated():
            row = self._conn.execute(
                "SELECT version, estimate FROM runtime_estimates WHERE pipeline = ?", (pipeline,)
            ).fetchone()
        return RuntimeEstimate.from_json(pipeline, row[1], row[0]) if row else None

    def _save_estimate(self, estimate: RuntimeEstimate, expected_version: int) -> bool:
        if expected_version == 0:
            cursor = self._run(
                "INSERT OR IGNORE INTO runtime_estimates (pipeline, version, estimate) VALUES (?, ?, ?)",
                (estimate.pipeline, estimate.version, estimate.to_json()),
            )
        else:
            cursor = self._run(
                "UPDATE runtime_estimates SET version = ?, estimate = ? WHERE pipeline = ? AND version = ?",
                (estimate.version, estimate.to_json(), estimate.pipeline, expected_version),
            )
        return cursor.rowcount == 1

    def _prune(self, before: float) -> int:
        return self._run("DELETE FROM task_records WHERE created_at < ?", (before,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
