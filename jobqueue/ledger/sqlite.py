"""The embedded task ledger: one SQLite table, safe across threads and processes.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (everything after ``sqlite:///`` is
the path, as in SQLAlchemy), optional ``?retention_s=N``; parent folders are created.

Every method is one transaction: read-modify-writes start with ``BEGIN IMMEDIATE`` so two workers (threads
or processes) never both see "no claim"; WAL keeps readers off the writers' lock and ``busy_timeout`` makes
a contended writer wait instead of failing. ``open_tasks`` reads a partial index of tasks without an
outcome, ordered by deadline. Records live until :meth:`SqliteLedger.prune` drops them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.ledger.base import Claim, ClaimState, Hop, HopState, Ledger, TaskRecord
from relay_core.domain import Outcome

DEFAULT_RETENTION_S = 30 * 86400
BUSY_TIMEOUT_S = 10.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tasks (
        task_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL DEFAULT -1,
        submit_state TEXT NOT NULL DEFAULT '',
        token TEXT,
        lease_until REAL NOT NULL DEFAULT 0,
        vendor_task_id TEXT,
        deadline_at REAL NOT NULL DEFAULT 0,
        outcome TEXT,
        reported_at REAL,
        hop_seq INTEGER NOT NULL DEFAULT -1,
        hop_until REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    # Only open tasks with a known deadline are indexed: open_tasks reads this index, never the table.
    """CREATE INDEX IF NOT EXISTS tasks_open_by_deadline
        ON tasks (deadline_at, task_id) WHERE outcome IS NULL AND deadline_at > 0""",
    "CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_at)",
)
_COLUMNS = "task_id, seq, submit_state, lease_until, vendor_task_id, deadline_at, outcome, reported_at, updated_at"
_INSERT_BLANK = "INSERT OR IGNORE INTO tasks (task_id, created_at, updated_at) VALUES (?, ?, ?)"


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3 errors into the jobqueue error tree."""
    try:
        yield
    except sqlite3.OperationalError as exc:  # locked, busy, disk I/O: worth a retry
        raise BackendUnavailable(f"sqlite ledger: {exc}") from exc
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"sqlite ledger: {exc}") from exc


def path_from_url(url: str) -> tuple[Path, dict[str, list[str]]]:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``; plus the query parameters."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.lstrip("/"):
        raise QueueConfigError(f"RELAY_LEDGER: {url!r} is not sqlite:///relative.db or sqlite:////absolute.db")
    return Path(parts.path[1:]), parse_qs(parts.query, keep_blank_values=True)


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
        path, query = path_from_url(url)
        retention = query.get("retention_s", [str(DEFAULT_RETENTION_S)])[-1]
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
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        with self._lock, _translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple]:
        """One statement in autocommit mode: its own consistent snapshot."""
        with self._lock, _translated():
            return self._conn.execute(sql, params).fetchall()

    # -- submit claim ----------------------------------------------------------------------
    def claim_submit(self, task_id: str, token: str, lease_s: float, deadline_at: float, now: float) -> Claim:
        with self._transaction() as conn:
            conn.execute(_INSERT_BLANK, (task_id, now, now))
            if deadline_at > 0:  # the first known deadline is kept
                conn.execute(
                    "UPDATE tasks SET deadline_at = ?, updated_at = ? WHERE task_id = ? AND deadline_at = 0",
                    (deadline_at, now, task_id),
                )
            state, holder, lease_until, vendor_task_id = conn.execute(
                "SELECT submit_state, token, lease_until, vendor_task_id FROM tasks WHERE task_id = ?",
                (task_id,),
            ).fetchone()
            if state == "submitted":
                return Claim(ClaimState.SUBMITTED, vendor_task_id=vendor_task_id)
            if state == "ambiguous":
                return Claim(ClaimState.AMBIGUOUS)
            if state == "leased" and holder != token and lease_until > now:
                return Claim(ClaimState.HELD, retry_after_s=lease_until - now)
            if state == "sending":  # the holder may have reached the vendor: wait for it, or never resubmit
                if lease_until > now:
                    return Claim(ClaimState.HELD, retry_after_s=lease_until - now)
                conn.execute(
                    "UPDATE tasks SET submit_state = 'ambiguous', lease_until = 0, updated_at = ? WHERE task_id = ?",
                    (now, task_id),
                )
                return Claim(ClaimState.AMBIGUOUS)
            conn.execute(
                "UPDATE tasks SET submit_state = 'leased', token = ?, lease_until = ?, updated_at = ?"
                " WHERE task_id = ?",
                (token, now + lease_s, now, task_id),
            )
            return Claim(ClaimState.ACQUIRED)

    def mark_sending(self, task_id: str, token: str, now: float) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET submit_state = 'sending', updated_at = ?"
                " WHERE task_id = ? AND submit_state = 'leased' AND token = ?",
                (now, task_id, token),
            )
            return cursor.rowcount == 1

    def record_submission(self, task_id: str, token: str, vendor_task_id: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "submitted", vendor_task_id, now)

    def mark_ambiguous(self, task_id: str, token: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "ambiguous", None, now)

    def release_submit(self, task_id: str, token: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "", None, now)

    def _settle_claim(self, task_id: str, token: str, state: str, vendor_task_id: str | None, now: float) -> bool:
        """Move a claim held by ``token`` to ``state``; releasing (``""``) also forgets the token."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET submit_state = ?, vendor_task_id = COALESCE(?, vendor_task_id),"
                " token = CASE WHEN ? = '' THEN NULL ELSE token END, lease_until = 0, updated_at = ?"
                " WHERE task_id = ? AND submit_state IN ('leased', 'sending') AND token = ?",
                (state, vendor_task_id, state, now, task_id, token),
            )
            return cursor.rowcount == 1

    def reset_submit(self, task_id: str, now: float) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET submit_state = '', token = NULL, lease_until = 0, updated_at = ?"
                " WHERE task_id = ? AND submit_state IN ('leased', 'sending', 'ambiguous')",
                (now, task_id),
            )
            return cursor.rowcount == 1

    # -- hop order ---------------------------------------------------------------------------
    def seq_handled(self, task_id: str) -> int:
        rows = self._read("SELECT seq FROM tasks WHERE task_id = ?", (task_id,))
        return rows[0][0] if rows else -1

    def advance(self, task_id: str, seq: int, now: float) -> bool:
        with self._transaction() as conn:
            conn.execute(_INSERT_BLANK, (task_id, now, now))
            cursor = conn.execute(
                "UPDATE tasks SET seq = ?, updated_at = ? WHERE task_id = ? AND seq < ?",
                (seq, now, task_id, seq),
            )
            return cursor.rowcount == 1

    def begin_hop(self, task_id: str, seq: int, lease_s: float, now: float) -> Hop:
        with self._transaction() as conn:
            conn.execute(_INSERT_BLANK, (task_id, now, now))
            handled, hop_seq, hop_until = conn.execute(
                "SELECT seq, hop_seq, hop_until FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            if seq <= handled or seq < hop_seq:
                return Hop(HopState.STALE)
            if seq == hop_seq and hop_until > now:
                return Hop(HopState.BUSY, retry_after_s=hop_until - now)
            conn.execute(
                "UPDATE tasks SET hop_seq = ?, hop_until = ?, updated_at = ? WHERE task_id = ?",
                (seq, now + lease_s, now, task_id),
            )
            return Hop(HopState.RUN)

    def release_hop(self, task_id: str, seq: int, now: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE tasks SET hop_until = 0, updated_at = ? WHERE task_id = ? AND hop_seq = ?",
                (now, task_id, seq),
            )

    # -- terminal outcome ----------------------------------------------------------------------
    def record_outcome(self, task_id: str, outcome: Outcome, now: float) -> Outcome:
        with self._transaction() as conn:
            conn.execute(_INSERT_BLANK, (task_id, now, now))
            conn.execute(
                "UPDATE tasks SET outcome = ?, updated_at = ? WHERE task_id = ? AND outcome IS NULL",
                (outcome.dumps(), now, task_id),
            )
            (stored,) = conn.execute("SELECT outcome FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            return Outcome.loads(stored)

    def mark_reported(self, task_id: str, now: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE tasks SET reported_at = ?, updated_at = ? WHERE task_id = ? AND reported_at IS NULL",
                (now, now, task_id),
            )

    # -- reading -------------------------------------------------------------------------------
    def get(self, task_id: str) -> TaskRecord | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return _record(rows[0]) if rows else None

    def open_tasks(self, deadline_before: float, limit: int = 100) -> list[TaskRecord]:
        """Tasks without an outcome whose known deadline is before ``deadline_before``, oldest first."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM tasks INDEXED BY tasks_open_by_deadline"
            " WHERE outcome IS NULL AND deadline_at > 0 AND deadline_at < ?"
            " ORDER BY deadline_at, task_id LIMIT ?",
            (deadline_before, limit),
        )
        return [_record(row) for row in rows]

    def prune(self, now: float) -> int:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM tasks WHERE created_at < ?", (now - self.retention_s,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _record(row: tuple) -> TaskRecord:
    task_id, seq, state, lease_until, vendor_task_id, deadline_at, outcome, reported_at, updated_at = row
    return TaskRecord(
        task_id=task_id,
        seq=seq,
        submit_state=state,
        lease_until=lease_until,
        vendor_task_id=vendor_task_id,
        deadline_at=deadline_at,
        outcome=Outcome.loads(outcome) if outcome else None,
        reported_at=reported_at,
        updated_at=updated_at,
    )
