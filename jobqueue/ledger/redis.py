"""The task ledger in Redis: one hash per task, a deadline index, every read-modify-write in a Lua script.

URL: ``redis://[:password@]host:port/db?prefix=relay&retention_s=2592000`` (``rediss://`` for TLS). Every key
starts with ``prefix``. The key layout, and what each script reads and writes, is documented in the header
of the ``.lua`` files beside this module (``claim_submit.lua`` first). Task hashes expire ``retention_s``
after their last write, so the ledger does not grow forever; ``open_tasks`` drops index entries whose hash
has expired. The scripts read task hashes whose names they build, so use a single-node Redis (not Cluster).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from jobqueue.errors import BackendUnavailable, QueueConfigError
from jobqueue.ledger.base import Claim, ClaimState, Hop, HopState, Ledger, TaskRecord
from relay_core.domain import Outcome

try:
    import redis
except ImportError as exc:  # pragma: no cover - the [redis] extra is part of every install we test
    raise QueueConfigError("RELAY_LEDGER: redis:// needs the Redis client: pip install 'scf-relay[redis]'") from exc

DEFAULT_PREFIX = "relay"
DEFAULT_RETENTION_S = 30 * 86400


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn redis-py errors into the jobqueue error tree (messages carry no credentials)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise BackendUnavailable(f"redis ledger: {type(exc).__name__}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise BackendUnavailable(f"redis ledger: {type(exc).__name__}: {exc}") from exc


def _script(client: redis.Redis, name: str) -> redis.commands.core.Script:
    source = resources.files("jobqueue.ledger").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return client.register_script(source)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def split_url(url: str) -> tuple[str, str, int]:
    """``redis://h:p/db?prefix=x&retention_s=n`` → (URL for redis-py without both, prefix, retention_s)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    retention = query.pop("retention_s", [str(DEFAULT_RETENTION_S)])[-1]
    if not prefix:
        raise QueueConfigError("RELAY_LEDGER: prefix= must not be empty")
    if not retention.isdigit() or int(retention) <= 0:
        raise QueueConfigError(f"RELAY_LEDGER: retention_s={retention!r} is not a positive integer")
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))
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
        with _translated():
            self._claim = _script(client, "claim_submit")
            self._settle = _script(client, "settle_claim")
            self._reset = _script(client, "reset_submit")
            self._advance = _script(client, "advance")
            self._hop = _script(client, "begin_hop")
            self._release_hop = _script(client, "release_hop")
            self._outcome = _script(client, "record_outcome")
            self._reported = _script(client, "mark_reported")
            self._open = _script(client, "open_tasks")

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

    @property
    def _deadlines_key(self) -> str:
        return f"{self.prefix}:deadlines"

    # -- submit claim ----------------------------------------------------------------------
    def claim_submit(self, task_id: str, token: str, lease_s: float, deadline_at: float, now: float) -> Claim:
        keys = [self._task_key(task_id), self._deadlines_key]
        args = [task_id, token, float(now + lease_s), float(deadline_at), float(now), self.retention_s]
        with _translated():
            reply = [_text(part) for part in self._claim(keys=keys, args=args)]
        state = ClaimState(reply[0])
        if state is ClaimState.HELD:
            return Claim(state, retry_after_s=float(reply[1]) - now)
        if state is ClaimState.SUBMITTED:
            return Claim(state, vendor_task_id=reply[1])
        return Claim(state)

    def mark_sending(self, task_id: str, token: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "sending", "", now)

    def record_submission(self, task_id: str, token: str, vendor_task_id: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "submitted", vendor_task_id, now)

    def mark_ambiguous(self, task_id: str, token: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "ambiguous", "", now)

    def release_submit(self, task_id: str, token: str, now: float) -> bool:
        return self._settle_claim(task_id, token, "", "", now)

    def _settle_claim(self, task_id: str, token: str, state: str, vendor_task_id: str, now: float) -> bool:
        args = [token, state, vendor_task_id, float(now), self.retention_s]
        with _translated():
            return self._settle(keys=[self._task_key(task_id)], args=args) == 1

    def reset_submit(self, task_id: str, now: float) -> bool:
        with _translated():
            return self._reset(keys=[self._task_key(task_id)], args=[float(now), self.retention_s]) == 1

    # -- hop order ---------------------------------------------------------------------------
    def seq_handled(self, task_id: str) -> int:
        with _translated():
            seq = self._client.hget(self._task_key(task_id), "seq")
        return int(seq) if seq is not None else -1

    def advance(self, task_id: str, seq: int, now: float) -> bool:
        with _translated():
            return self._advance(keys=[self._task_key(task_id)], args=[int(seq), float(now), self.retention_s]) == 1

    def begin_hop(self, task_id: str, seq: int, lease_s: float, now: float) -> Hop:
        args = [int(seq), float(now + lease_s), float(now), self.retention_s]
        with _translated():
            reply = [_text(part) for part in self._hop(keys=[self._task_key(task_id)], args=args)]
        state = HopState(reply[0])
        return Hop(state, retry_after_s=float(reply[1]) - now) if state is HopState.BUSY else Hop(state)

    def release_hop(self, task_id: str, seq: int, now: float) -> None:
        with _translated():
            self._release_hop(keys=[self._task_key(task_id)], args=[int(seq), float(now), self.retention_s])

    # -- terminal outcome ----------------------------------------------------------------------
    def record_outcome(self, task_id: str, outcome: Outcome, now: float) -> Outcome:
        keys = [self._task_key(task_id), self._deadlines_key]
        with _translated():
            stored = self._outcome(keys=keys, args=[task_id, outcome.dumps(), float(now), self.retention_s])
        return Outcome.loads(_text(stored))

    def mark_reported(self, task_id: str, now: float) -> None:
        with _translated():
            self._reported(keys=[self._task_key(task_id)], args=[float(now), self.retention_s])

    # -- reading -------------------------------------------------------------------------------
    def get(self, task_id: str) -> TaskRecord | None:
        with _translated():
            fields = self._client.hgetall(self._task_key(task_id))
        if not fields:
            return None
        return _record(task_id, {_text(name): _text(value) for name, value in fields.items()})

    def open_tasks(self, deadline_before: float, limit: int = 100) -> list[TaskRecord]:
        """Tasks without an outcome whose known deadline is before ``deadline_before``, oldest first."""
        if limit <= 0:
            return []
        args = [float(deadline_before), int(limit), f"{self.prefix}:task:"]
        with _translated():
            flat = self._open(keys=[self._deadlines_key], args=args)
        records = []
        for task_id, pairs in zip(flat[::2], flat[1::2], strict=True):
            fields = dict(zip(map(_text, pairs[::2]), map(_text, pairs[1::2]), strict=True))
            records.append(_record(_text(task_id), fields))
        return records

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def _record(task_id: str, fields: dict[str, str]) -> TaskRecord:
    outcome = fields.get("outcome")
    reported_at = fields.get("reported_at")
    return TaskRecord(
        task_id=task_id,
        seq=int(fields.get("seq", -1)),
        submit_state=fields.get("submit_state", ""),
        lease_until=float(fields.get("lease_until", 0.0)),
        vendor_task_id=fields.get("vendor_task_id"),
        deadline_at=float(fields.get("deadline_at", 0.0)),
        outcome=Outcome.loads(outcome) if outcome else None,
        reported_at=float(reported_at) if reported_at is not None else None,
        updated_at=float(fields.get("updated_at", 0.0)),
    )
