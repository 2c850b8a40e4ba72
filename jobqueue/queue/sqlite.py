"""The embedded queue: one SQLite file, safe for several threads and processes on one machine.

Tables::

    messages      id, body, visible_at, receive_count, receipt, enqueued_at
    dead_letters  id, body, reason, dead_at, receive_count

A message is *ready* when ``visible_at <= now``, *delayed* when ``visible_at > now`` and it was never
received, *in flight* when ``visible_at > now`` after a receive. Receiving sets ``visible_at`` to the
visibility deadline and a fresh random receipt, so an expired message simply becomes ready again and
the previous holder's receipt stops matching once someone receives it anew.

Concurrency: WAL journal, a busy timeout, one connection per thread (and per process), and every state
change in one transaction; receive takes the write lock first (``BEGIN IMMEDIATE``), so two processes
never pick the same row. ``synchronous=NORMAL`` keeps every commit across a crash of the process (WAL
only loses the last commits when the whole machine loses power).

URL: ``sqlite:///relative/path.db`` (three slashes: relative to the working directory) or
``sqlite:////abs/path.db`` (four: absolute), as SQLAlchemy reads them; parent folders are created.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from jobqueue.errors import BackendUnavailable
from jobqueue.queue.base import (
    Clock,
    DeadLetter,
    Peekable,
    Peeked,
    Queue,
    QueueAdmin,
    QueueStats,
    Received,
    Releasable,
    StatsSource,
    exceeded_reason,
)
from jobqueue.queue.polling import poll_until_some
from jobqueue.urls import sqlite_path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id            TEXT PRIMARY KEY,
    body          TEXT NOT NULL,
    visible_at    REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    enqueued_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_visible_at ON messages (visible_at);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_receipt ON messages (receipt);
CREATE TABLE IF NOT EXISTS dead_letters (
    id            TEXT PRIMARY KEY,
    body          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    dead_at       REAL NOT NULL,
    receive_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_dead_at ON dead_letters (dead_at);
"""
_INSERT_MESSAGE = "INSERT INTO messages (id, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?)"
_DEAD_COLUMNS = "id, body, reason, dead_at, receive_count"  # in the order of DeadLetter's fields


class SqliteQueue(Queue, Releasable, QueueAdmin, StatsSource, Peekable):
    """Both planes of :mod:`jobqueue.queue.base` in one SQLite file (the embedded backend).

    ``clock`` (unix seconds, default :func:`time.time`) is the only time source of every delay, visibility
    deadline, enqueue time and dead-letter time, so a test can run the queue in virtual time. Only the
    ``wait_s`` of a receive and the busy timeout are real time.
    """

    max_batch = 16
    max_delay_s = 43_200  # like CMQ, so code tested here splits long waits the same way

    def __init__(
        self,
        path: str | Path,
        *,
        max_receive_count: int = 5,
        clock: Clock = time.time,
        busy_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(max_receive_count=max_receive_count)
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    @classmethod
    def from_url(cls, url: str, *, max_receive_count: int = 5, clock: Clock = time.time) -> SqliteQueue:
        """Open ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (see the module docstring)."""
        path, _ = sqlite_path(url, "RELAY_QUEUE")
        return cls(path, max_receive_count=max_receive_count, clock=clock)

    def __repr__(self) -> str:
        return f"SqliteQueue({str(self.path)!r})"

    # -- data plane ----------------------------------------------------------------------------
    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        now = self._clock()
        rows = [(uuid.uuid4().hex, body, now + delay_s, now) for body in bodies]
        with self._transaction() as db:
            db.executemany(_INSERT_MESSAGE, rows)
        return [row[0] for row in rows]

    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        return poll_until_some(lambda: self._receive_now(max_messages, visibility_timeout_s), wait_s)

    def delete(self, receipt: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM messages WHERE receipt = ?", (receipt,)).rowcount == 1

    def release(self, receipt: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE messages SET visible_at = ?, receive_count = MAX(receive_count - 1, 0) WHERE receipt = ?",
                (self._clock(), receipt),
            )
            return cursor.rowcount == 1

    def dead_letter(self, received: Received, reason: str) -> bool:
        if not reason:
            raise ValueError("a dead letter needs a reason")
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, body, receive_count FROM messages WHERE id = ? AND receipt = ?",
                (received.message_id, received.receipt),
            ).fetchone()
            if row is None:
                return False
            self._bury(db, row[0], row[1], row[2], reason)
            return True

    # -- operator plane ------------------------------------------------------------------------
    def _list_dead(self, limit: int) -> list[DeadLetter]:
        rows = self._read(f"SELECT {_DEAD_COLUMNS} FROM dead_letters ORDER BY dead_at, rowid LIMIT ?", (limit,))
        return [DeadLetter(*row) for row in rows]

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        rows = self._read(f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE id = ?", (message_id,))
        return DeadLetter(*rows[0]) if rows else None

    def _redrive_ids(self, message_ids: list[str]) -> list[str]:
        return self._redrive(
            lambda db: [
                row
                for message_id in message_ids
                for row in db.execute("SELECT id, body FROM dead_letters WHERE id = ?", (message_id,))
            ]
        )

    def _redrive_oldest(self, limit: int | None) -> list[str]:
        return self._redrive(
            lambda db: db.execute(
                "SELECT id, body FROM dead_letters ORDER BY dead_at, rowid LIMIT ?", (-1 if limit is None else limit,)
            ).fetchall()
        )

    def remove_dead(self, message_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM dead_letters WHERE id = ?", (message_id,)).rowcount == 1

    def stats_source(self) -> StatsSource:
        return self

    def stats(self) -> QueueStats:
        (row,) = self._read(
            """
            SELECT
              (SELECT COUNT(*) FROM messages WHERE visible_at <= :now),
              (SELECT COUNT(*) FROM messages WHERE visible_at > :now AND receive_count = 0),
              (SELECT COUNT(*) FROM messages WHERE visible_at > :now AND receive_count > 0),
              (SELECT COUNT(*) FROM dead_letters),
              (SELECT MIN(enqueued_at) FROM messages WHERE visible_at <= :now OR receive_count = 0)
            """,
            {"now": self._clock()},
        )
        return QueueStats(ready=row[0], delayed=row[1], in_flight=row[2], dead=row[3], oldest_enqueued_at=row[4])

    def peek(self, limit: int = 5) -> list[Peeked]:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        rows = self._read(
            """
            SELECT id, body, visible_at <= :now, visible_at, receive_count, enqueued_at FROM messages
            WHERE visible_at <= :now OR receive_count = 0
            ORDER BY visible_at > :now, visible_at, rowid LIMIT :limit
            """,
            {"now": self._clock(), "limit": limit},
        )
        return [
            Peeked(mid, body, "ready" if ready else "delayed", visible_at, count, enqueued_at)
            for mid, body, ready, visible_at, count, enqueued_at in rows
        ]

    def close(self) -> None:
        """Close every connection this object opened (in any thread); a later call reopens lazily."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    # -- internals -----------------------------------------------------------------------------
    def _redrive(self, pick: Callable[[sqlite3.Connection], list[tuple[str, str]]]) -> list[str]:
        """Move the dead letters ``pick`` selects (inside the transaction) back to the queue, ready now."""
        now = self._clock()
        with self._transaction() as db:
            rows = pick(db)
            for message_id, body in rows:
                db.execute("DELETE FROM dead_letters WHERE id = ?", (message_id,))
                db.execute(_INSERT_MESSAGE, (message_id, body, now, now))
        return [row[0] for row in rows]

    def _receive_now(self, max_messages: int, visibility_timeout_s: float) -> list[Received]:
        now = self._clock()
        received: list[Received] = []
        with self._transaction() as db:
            while len(received) < max_messages:
                rows = db.execute(
                    "SELECT id, body, receive_count, enqueued_at FROM messages WHERE visible_at <= ? "
                    "ORDER BY visible_at, rowid LIMIT ?",
                    (now, max_messages - len(received)),
                ).fetchall()
                if not rows:
                    break
                for message_id, body, count, enqueued_at in rows:
                    if count >= self.max_receive_count:
                        reason = exceeded_reason(count, self.max_receive_count)
                        self._bury(db, message_id, body, count, reason)
                        continue
                    receipt = secrets.token_urlsafe(18)
                    db.execute(
                        "UPDATE messages SET receive_count = ?, receipt = ?, visible_at = ? WHERE id = ?",
                        (count + 1, receipt, now + visibility_timeout_s, message_id),
                    )
                    received.append(Received(message_id, body, receipt, count + 1, enqueued_at))
        return received

    def _bury(self, db: sqlite3.Connection, message_id: str, body: str, count: int, reason: str) -> None:
        """Move one message to the dead letters (inside the caller's transaction)."""
        db.execute(
            f"INSERT OR REPLACE INTO dead_letters ({_DEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (message_id, body, reason, self._clock(), count),
        )
        db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def _read(self, sql: str, params: Sequence[object] | dict[str, object]) -> list[tuple]:
        """One read-only query (a consistent snapshot under WAL, no write lock)."""
        with _translated_errors(self.path):
            return self._conn().execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error), SQLite errors as QueueError."""
        db = self._conn()
        with _translated_errors(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own instead of sharing the parent's)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        with _translated_errors(self.path):
            connection = sqlite3.connect(
                str(self.path), timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            self._enable_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
        self._local.connection, self._local.pid = connection, os.getpid()
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        """Switch to WAL, retrying: the switch needs the file alone for a moment and, while another
        process opens it, SQLite may answer "database is locked" without waiting on the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


@contextlib.contextmanager
def _translated_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise BackendUnavailable(f"sqlite queue {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"sqlite queue {path}: {exc}") from exc
