"""The task ledger in Redis: one string per task, two index zsets, every write one Lua compare-and-set.

URL: ``redis://[:password@]host:port/db?prefix=relay&retention_s=2592000`` (``rediss://`` for TLS). Every key
starts with ``prefix``; the key layout is documented in the header of ``save.lua`` beside this module. A task's
record is one string ``<version>|<record JSON>``, so a load is one ``GET`` and a save one ``GET`` and one
``SET ... EX`` inside the script. (Before this layout a task was a hash with ``version`` and ``record`` fields; the
change came before the first release and has no migration: a ledger written by the older layout must be emptied.)
Task records expire ``retention_s`` after their last write, so the ledger does not grow forever; readers of an index
drop the members whose record has expired. A vendor-task entry expires ``retention_s`` after the vendor task id was
recorded (saves that keep the id do not rewrite it). A save names its keys, but index readers build task keys from
ids, so use a single-node Redis (not Cluster).

Writes start from the record this object last read or wrote (a :class:`~jobqueue.ledger.record_cache.RecordCache`,
see :meth:`Ledger._apply`): a step's writes to a task then cost one round trip each instead of two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import resources
from typing import cast

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.ledger.base import DEFAULT_RETENTION_S, Ledger
from jobqueue.ledger.record import RuntimeEstimate, TaskRecord
from jobqueue.ledger.record_cache import RecordCache
from jobqueue.urls import redis_url

try:
    import redis
except ImportError as exc:  # pragma: no cover - the [redis] extra is part of every install we test
    raise QueueConfigError("RELAY_LEDGER: redis:// needs the Redis client: pip install 'scf-relay[redis]'") from exc

DEFAULT_PREFIX = "relay"
#: compare-and-set of a runtime estimate, stored as one string ``<version>|<estimate JSON>``: KEYS[1] its key;
#: ARGV expected version ("0": absent), new version, estimate JSON. Returns 1 when written; a lost compare-and-set
#: puts the stored value back (written first, checked after, as ``save.lua`` does).
_SAVE_ESTIMATE = """
local stored = redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[3], 'GET')
if (stored and string.match(stored, '^(%d+)|') or '0') ~= ARGV[1] then
  if stored then redis.call('SET', KEYS[1], stored) else redis.call('DEL', KEYS[1]) end
  return 0
end
return 1
"""
PRUNE_BATCH = 500
#: how long (monotonic s) a record this ledger read or wrote is the first guess of a write (and vouches for the
#: index entries of its version), and how many it keeps; a record read moments ago cannot have expired and started
#: again at the same version (records live ``retention_s`` after their last write)
RECORD_CACHE_S = 60.0
RECORD_CACHE_MAX = 4096


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn redis-py errors into the jobqueue error tree (messages carry no credentials)."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise BackendUnavailable(f"redis ledger: {type(exc).__name__}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(value: float | None) -> str:
    """An index score for ``save.lua``: ``""`` leaves the index; ``repr`` keeps every bit of the float."""
    return "" if value is None else repr(float(value))


_UNKNOWN = object()


def _versioned(raw: str | bytes | None) -> tuple[int, str] | None:
    """``<version>|<json>`` → (version, json); ``None`` for a missing key."""
    if raw is None:
        return None
    version, _, data = _text(raw).partition("|")
    return int(version), data


def _index_score(value: float | None, stored: object) -> str:
    """:func:`_score`, or ``"="`` (no index write) when the stored version is known to have the same one."""
    return "=" if stored is not _UNKNOWN and stored == value else _score(value)


def _address(client: redis.Redis) -> tuple[object, ...]:
    kwargs = client.connection_pool.connection_kwargs
    return tuple(kwargs.get(name) for name in ("host", "port", "path", "db"))


def split_url(url: str) -> tuple[str, str, int]:
    """``redis://h:p/db?prefix=x&retention_s=n`` → (URL for redis-py without both, prefix, retention_s)."""
    client_url, ours = redis_url(url, "RELAY_LEDGER", frozenset({"prefix", "retention_s"}))
    prefix = ours.get("prefix", DEFAULT_PREFIX)
    retention = ours.get("retention_s", str(DEFAULT_RETENTION_S))
    if not prefix:
        raise QueueConfigError("RELAY_LEDGER: prefix= must not be empty")
    if not retention.isdigit() or int(retention) <= 0:
        raise QueueConfigError(f"RELAY_LEDGER: retention_s={retention!r} is not a positive integer")
    return client_url, prefix, int(retention)


class RedisLedger(Ledger):
    """The ledger in Redis. ``client`` is any redis-py client; the ledger closes it only if it made it."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, retention_s: int = DEFAULT_RETENTION_S
    ) -> None:
        super().__init__(retention_s=retention_s)
        self.prefix = prefix
        self._client = client
        self._owns_client = False
        self.use_record_cache(RecordCache(ttl_s=min(RECORD_CACHE_S, retention_s / 2), max_entries=RECORD_CACHE_MAX))
        source = resources.files("jobqueue.ledger").joinpath("save.lua").read_text(encoding="utf-8")
        with _translated():
            self._save_script = client.register_script(source)
            self._save_estimate_script = client.register_script(_SAVE_ESTIMATE)

    @classmethod
    def from_url(cls, url: str) -> RedisLedger:
        client_url, prefix, retention_s = split_url(url)
        try:
            client = redis.Redis.from_url(client_url, decode_responses=True)
        except ValueError as exc:
            raise QueueConfigError(f"RELAY_LEDGER: not a usable Redis URL ({exc})") from None
        ledger = cls(client, prefix=prefix, retention_s=retention_s)
        ledger._owns_client = True
        return ledger

    def __repr__(self) -> str:
        return f"RedisLedger(prefix={self.prefix!r})"

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def _vendor_key(self, vendor_task_id: str) -> str:
        return f"{self.prefix}:vendor:{vendor_task_id}"

    def _estimate_key(self, pipeline: str) -> str:
        return f"{self.prefix}:estimate:{pipeline}"

    @property
    def _deadlines_key(self) -> str:
        return f"{self.prefix}:deadlines"

    @property
    def _unreported_key(self) -> str:
        return f"{self.prefix}:unreported"

    # -- primitives ------------------------------------------------------------------------------
    def _load(self, task_id: str) -> TaskRecord | None:
        with _translated():
            stored = _versioned(self._client.get(self._task_key(task_id)))
        return TaskRecord.from_json(stored[1], stored[0]) if stored is not None else None

    def _save(self, record: TaskRecord, expected_version: int) -> bool:
        keys, args = self.save_request(record, expected_version)
        with _translated():
            return int(self._save_script(keys=keys, args=args)) == 1

    def save_request(self, record: TaskRecord, expected_version: int) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of ``save.lua``, the compare-and-set of :meth:`_save` (also run inside a larger script, see
        :mod:`jobqueue.redis_hop`). Index entries the stored version already has are not written again: when this
        ledger read or wrote version ``expected_version`` moments ago (its record cache), a score (or vendor id)
        equal to that version's is passed as unchanged (the compare-and-set proves the stored record is that
        version). An insert (``expected_version`` 0) writes only the entries the new record has: the indexes hold
        nothing of a task without a record, but for members left by a record that expired, which readers skip
        (their record disagrees) and the task's next index write replaces."""
        previous = self._cached(record.task_id)
        if previous is not None and previous.version != expected_version:
            previous = None
        if previous is None and expected_version == 0:  # an insert: the indexes have nothing of the task
            previous = TaskRecord.blank(record.task_id, 0.0)
        keys = [self._task_key(record.task_id), self._deadlines_key, self._unreported_key]
        vendor_key = record.vendor_key()
        if vendor_key is not None and (previous is None or previous.vendor_key() != vendor_key):
            keys.append(self._vendor_key(vendor_key))
        args: list[str | int] = [
            record.task_id,
            str(expected_version),
            str(record.version),
            record.to_json(),
            _index_score(record.open_deadline(), previous.open_deadline() if previous else _UNKNOWN),
            _index_score(record.unreported_since(), previous.unreported_since() if previous else _UNKNOWN),
            self.retention_s,
        ]
        return keys, args

    def raises_seq(self, record: TaskRecord, expected_version: int) -> bool:
        """Whether ``record`` raises the handled seq of version ``expected_version`` as this ledger last read or
        wrote it (``False`` when it no longer holds that version); version 0 is a record not yet written."""
        previous = self._cached(record.task_id) if expected_version else TaskRecord.blank(record.task_id, 0.0)
        return previous is not None and previous.version == expected_version and record.seq > previous.seq

    def same_server(self, client: redis.Redis) -> bool:
        """Whether ``client`` talks to the same Redis server and database as this ledger."""
        return _address(client) == _address(self._client)

    def _open_by_deadline(self, before: float, limit: int) -> list[TaskRecord]:
        return self._indexed(self._deadlines_key, before, limit, TaskRecord.open_deadline)

    def _unreported(self, before: float, limit: int) -> list[TaskRecord]:
        return self._indexed(self._unreported_key, before, limit, TaskRecord.unreported_since)

    def _by_vendor_task(self, vendor_task_id: str) -> TaskRecord | None:
        with _translated():
            task_id = self._client.get(self._vendor_key(vendor_task_id))
        if task_id is None:
            return None
        record = self._load(_text(task_id))
        return record if record is not None and record.vendor_key() == vendor_task_id else None

    def _load_estimate(self, pipeline: str) -> RuntimeEstimate | None:
        with _translated():
            stored = _versioned(self._client.get(self._estimate_key(pipeline)))
        return RuntimeEstimate.from_json(pipeline, stored[1], stored[0]) if stored is not None else None

    def _save_estimate(self, estimate: RuntimeEstimate, expected_version: int) -> bool:
        args = [str(expected_version), str(estimate.version), estimate.to_json()]
        with _translated():
            return int(self._save_estimate_script(keys=[self._estimate_key(estimate.pipeline)], args=args)) == 1

    def _prune(self, before: float) -> int:
        """Records expire by their TTL; this drops the index members whose record is gone (``before`` unused)."""
        dropped = 0
        for index in (self._deadlines_key, self._unreported_key):
            with _translated():
                members = [_text(m) for m, _ in self._client.zscan_iter(index, count=PRUNE_BATCH)]
            for start in range(0, len(members), PRUNE_BATCH):
                batch = members[start : start + PRUNE_BATCH]
                with _translated(), self._client.pipeline(transaction=False) as pipe:
                    for task_id in batch:
                        pipe.exists(self._task_key(task_id))
                    exists = pipe.execute()
                dropped += self._drop_expired(index, [t for t, n in zip(batch, exists, strict=True) if not n])
        return dropped

    # -- index reading ---------------------------------------------------------------------------
    def _indexed(
        self, index: str, before: float, limit: int, score: Callable[[TaskRecord], float | None]
    ) -> list[TaskRecord]:
        """Up to ``limit`` live records of ``index`` with a score below ``before``, lowest first; members whose
        record expired are dropped on the way, records that changed since the index was read are skipped."""
        found: list[TaskRecord] = []
        offset = 0
        while len(found) < limit:
            with _translated():
                members = self._client.zrangebyscore(
                    index, "-inf", f"({float(before)!r}", start=offset, num=limit - len(found)
                )
                ids = [_text(t) for t in cast("list[bytes | str]", members)]
                if not ids:
                    break
                with self._client.pipeline(transaction=False) as pipe:
                    for task_id in ids:
                        pipe.get(self._task_key(task_id))
                    rows = pipe.execute()
            expired = []
            for task_id, raw in zip(ids, rows, strict=True):
                stored = _versioned(raw)
                if stored is None:
                    expired.append(task_id)
                    continue
                record = TaskRecord.from_json(stored[1], stored[0])
                if (value := score(record)) is not None and value < before:
                    found.append(record)
            offset += len(ids) - self._drop_expired(index, expired)
        return found

    def _drop_expired(self, index: str, task_ids: list[str]) -> int:
        """Remove from ``index`` those of ``task_ids`` whose record does not exist, checked and removed in one
        WATCH/MULTI transaction so a task saved again meanwhile keeps its entry. Returns how many went."""
        if not task_ids:
            return 0
        keys = [self._task_key(task_id) for task_id in task_ids]

        gone: list[str] = []

        def drop(pipe: redis.client.Pipeline) -> None:  # run again from the start if a watched key changes
            gone[:] = [task_id for task_id, key in zip(task_ids, keys, strict=True) if not pipe.exists(key)]
            pipe.multi()
            if gone:
                pipe.zrem(index, *gone)

        with _translated():
            self._client.transaction(drop, *keys)
        return len(gone)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
