"""The task ledger in Redis: one hash per task, two index zsets, every write one Lua compare-and-set.

URL: ``redis://[:password@]host:port/db?prefix=relay&retention_s=2592000`` (``rediss://`` for TLS). Every key
starts with ``prefix``; the key layout is documented in the header of ``save.lua`` beside this module, the
only script. Task hashes expire ``retention_s`` after their last write, so the ledger does not grow forever;
readers of an index drop the members whose hash has expired. A vendor-task entry expires ``retention_s`` after the
vendor task id was recorded (saves that keep the id do not rewrite it). A save names its three keys, but index readers
build task keys from ids, so use a single-node Redis (not Cluster).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import cast

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.ledger.base import DEFAULT_RETENTION_S, Ledger
from jobqueue.ledger.record import RuntimeEstimate, TaskRecord
from jobqueue.urls import redis_url

try:
    import redis
except ImportError as exc:  # pragma: no cover - the [redis] extra is part of every install we test
    raise QueueConfigError("RELAY_LEDGER: redis:// needs the Redis client: pip install 'scf-relay[redis]'") from exc

DEFAULT_PREFIX = "relay"
#: compare-and-set of a runtime estimate hash: KEYS[1] the hash; ARGV expected version ("0": absent), new
#: version, estimate JSON. Returns 1 when written.
_SAVE_ESTIMATE = """
if (redis.call('HGET', KEYS[1], 'version') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'estimate', ARGV[3])
return 1
"""
PRUNE_BATCH = 500
#: how long (monotonic s) a record this ledger read or wrote may vouch for the stored indexes of its version, and
#: how many such records it keeps (the versions of a task's record only repeat after it expired, days later)
_KNOWN_S = 60.0
_KNOWN_MAX = 4096


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


def _index_score(value: float | None, stored: object) -> str:
    """:func:`_score`, or ``"="`` (no index write) when the stored version is known to have the same one."""
    return "=" if stored is not _UNKNOWN and stored == value else _score(value)


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
        self._known: dict[str, tuple[float, TaskRecord]] = {}  # task id -> (read or written at, record)
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
            version, raw = self._client.hmget(self._task_key(task_id), ["version", "record"])
        if raw is None or version is None:
            return None
        record = TaskRecord.from_json(raw, int(version))
        self._remember(record)
        return record

    def _save(self, record: TaskRecord, expected_version: int) -> bool:
        """The compare-and-set of ``save.lua``. Index entries the stored version already has are not written again:
        when this ledger read or wrote version ``expected_version`` moments ago, a score (or vendor id) equal to
        that version's is passed as unchanged (the compare-and-set proves the stored record is that version)."""
        previous = self._recent(record.task_id, expected_version)
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
        with _translated():
            saved = int(self._save_script(keys=keys, args=args)) == 1
        if saved:
            self._remember(record)
        return saved

    def _remember(self, record: TaskRecord) -> None:
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[record.task_id] = (time.monotonic(), record)

    def _recent(self, task_id: str, version: int) -> TaskRecord | None:
        """The record of ``task_id`` at ``version`` if this ledger read or wrote it within :data:`_KNOWN_S`."""
        known = self._known.get(task_id)
        if known is None or known[1].version != version or time.monotonic() - known[0] > _KNOWN_S:
            return None
        return known[1]

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
            version, raw = self._client.hmget(self._estimate_key(pipeline), ["version", "estimate"])
        return RuntimeEstimate.from_json(pipeline, raw, int(version)) if raw is not None and version else None

    def _save_estimate(self, estimate: RuntimeEstimate, expected_version: int) -> bool:
        args = [str(expected_version), str(estimate.version), estimate.to_json()]
        with _translated():
            return int(self._save_estimate_script(keys=[self._estimate_key(estimate.pipeline)], args=args)) == 1

    def _prune(self, before: float) -> int:
        """Hashes expire by their TTL; this drops the index members whose hash is gone (``before`` unused)."""
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
        hash expired are dropped on the way, records that changed since the index was read are skipped."""
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
                        pipe.hmget(self._task_key(task_id), ["version", "record"])
                    rows = pipe.execute()
            expired = []
            for task_id, (version, raw) in zip(ids, rows, strict=True):
                if raw is None:
                    expired.append(task_id)
                    continue
                record = TaskRecord.from_json(raw, int(version))
                if (value := score(record)) is not None and value < before:
                    found.append(record)
            offset += len(ids) - self._drop_expired(index, expired)
        return found

    def _drop_expired(self, index: str, task_ids: list[str]) -> int:
        """Remove from ``index`` those of ``task_ids`` whose hash does not exist, checked and removed in one
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
