"""The self-hosted queue on Redis: every state change is one Lua script (``*.lua`` beside this file).

URL: ``redis://[:password@]host:port/db?prefix=relay&queue=jobs`` (``rediss://`` for TLS). Every key of
the queue starts with ``<prefix>:<queue>:``; the key layout is documented at the top of each script. Each message
is one hash (body, enqueue time, receive count, receipt), so deleting one is a single ``DEL``; the scripts build
those keys from message ids, so use a single-node Redis (not Cluster). (Before, a message was spread over four
hashes keyed by id; the change came before the first release and has no migration: drain the queue first.)

Time: the scores (when a delayed message becomes ready, when a visibility timeout ends, when a message
died) come from this process's clock (``clock``, default :func:`time.time`), passed to the scripts as
``now``; the server's clock is never read. Workers on several machines therefore need synchronised clocks
(NTP); a skew of a few seconds only shifts delays and visibility deadlines by that much.

Nothing is held in worker memory: a delayed message is a sorted-set entry, a received one stays in the
in-flight set until it is deleted, and a receive after its deadline puts it back (with a higher receive
count): the first one that finds nothing else ready, and while other messages are ready one per
:data:`EXPIRY_READ_S` of each queue object, so a worker dying between receive and delete loses nothing. Due
delayed messages join the ready list the same way: at the first receive that finds nothing else ready, and while
other messages are ready at a receive of a queue object that knows one is due (it sent it, or an earlier receive
saw it at the head of the delayed set) or that last looked :data:`DELAYED_READ_S` ago.

Waiting (``wait_s``): an empty receive blocks on the queue's wake flag (``BZPOPMIN``) instead of polling, until
a send or release signals a ready message or the next delayed or in-flight message falls due; one thread per
queue object blocks, the others wait in-process (:mod:`jobqueue.queue.wake_gate`). Needs Redis 6.2 or later
(``RPOP`` with a count, fractional blocking timeouts).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobqueue.errors import BackendUnavailable, QueueConfigError
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
from jobqueue.queue.wake_gate import WakeGate
from jobqueue.urls import redis_url

DEFAULT_PREFIX = "relay"
DEFAULT_QUEUE = "jobs"
#: the order of KEYS every script receives (see the header of any ``*.lua`` file)
KEY_NAMES = (
    "msg:",  # not a key: the common start of the message hashes ("msg:<id>")
    "ready",
    "delayed",
    "inflight",
    "dead",
    "dead_order",
    "wake",
)
_SCRIPTS = ("send", "receive", "finish", "release", "redrive", "remove_dead")
#: a receive that finds ready messages looks for expired in-flight ones (their runner is gone) at most this often
#: (queue clock, per queue object); one that finds none always looks (see receive.lua)
EXPIRY_READ_S = 1.0
#: while other messages are ready, the longest a queue object goes without looking for due delayed messages it
#: does not know of (sent by another process): how long such a message may wait to join the ready ones
DELAYED_READ_S = 0.1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_REDRIVE_CHUNK = 100


class RedisQueue(Queue, Releasable, QueueAdmin, StatsSource, Peekable):
    """Both planes of :mod:`jobqueue.queue.base` on Redis; ``client`` is a ``redis.Redis(decode_responses=True)``.

    Time comes from ``clock`` (this process's, default :func:`time.time`), never from the Redis server: see the
    module docstring.
    """

    max_batch = 16
    max_delay_s = 7 * 24 * 3600

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue: str = DEFAULT_QUEUE,
        max_receive_count: int = 5,
        clock: Clock = time.time,
        owns_client: bool = False,
    ) -> None:
        super().__init__(max_receive_count=max_receive_count)
        _check_names(prefix, queue)
        self.prefix, self.queue = prefix, queue
        self.keys = [f"{prefix}:{queue}:{name}" for name in KEY_NAMES]
        self._client = client
        self._owns_client = owns_client
        self._clock = clock
        folder = Path(__file__).parent
        self._scripts = {
            name: client.register_script((folder / f"{name}.lua").read_text(encoding="utf-8")) for name in _SCRIPTS
        }
        self._wake_gate: WakeGate[Received] = WakeGate(clock)
        self._next_expiry_read = float("-inf")  # queue clock; races between threads only cost an extra read
        # the earliest a delayed message this object knows of falls due, and when it looks again regardless
        self._delayed_due = self._next_delayed_read = float("-inf")

    @classmethod
    def from_url(cls, url: str, *, max_receive_count: int = 5, clock: Clock = time.time) -> RedisQueue:
        """Connect to ``url``; its ``prefix`` and ``queue`` parameters name the keys, the rest go to redis."""
        import redis

        redis_url, prefix, queue = _split_url(url)
        try:
            client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5)
        except ValueError as exc:  # redis-py names the bad part; the URL itself may hold a password
            raise QueueConfigError(f"RELAY_QUEUE: bad redis URL: {exc}") from None
        return cls(
            client,
            prefix=prefix,
            queue=queue,
            max_receive_count=max_receive_count,
            clock=clock,
            owns_client=True,
        )

    def __repr__(self) -> str:
        return f"RedisQueue(prefix={self.prefix!r}, queue={self.queue!r})"

    # -- data plane ----------------------------------------------------------------------------
    def _send_many(self, bodies: list[str], delay_s: float) -> list[str]:
        ids, args = self.send_request(bodies, delay_s)
        self._run("send", *args)
        return ids

    def send_request(self, bodies: list[str], delay_s: float) -> tuple[list[str], list[str]]:
        """New message ids and the ARGV of ``send.lua`` for ``bodies`` (at most ``max_batch``, a checked delay)."""
        ids = [uuid.uuid4().hex for _ in bodies]
        now = self._clock()
        pairs = [value for message_id, body in zip(ids, bodies, strict=True) for value in (message_id, body)]
        if delay_s > 0:  # due before what a receive last saw at the delayed set's head: look for it then
            self._delayed_due = min(self._delayed_due, now + delay_s)
        return ids, [_score(now), _score(now + delay_s), *pairs]

    def renew_request(self, receipt: str, body: str, visibility_timeout_s: float) -> list[str]:
        """The ARGV of ``renew.lua`` (without its mode): ``receipt``'s message gets ``body``, hidden for
        ``visibility_timeout_s`` more."""
        return [receipt, body, _score(self._clock() + visibility_timeout_s)]

    def finish_request(self, receipt: str, reason: str = "") -> list[str]:
        """The ARGV of ``finish.lua``: delete (``reason`` empty) or dead-letter the message of ``receipt``."""
        return [receipt, _score(self._clock()), reason]

    @property
    def client(self) -> Any:
        """The redis-py client (for a script that moves this queue together with other keys on its server)."""
        return self._client

    def _receive(self, max_messages: int, visibility_timeout_s: float, wait_s: float) -> list[Received]:
        """Blocks on the wake flag between receives (:mod:`jobqueue.queue.wake_gate`), never by polling."""
        return self._wake_gate.receive(
            lambda: self._receive_now(max_messages, visibility_timeout_s), self._block, wait_s
        )

    def delete(self, receipt: str) -> bool:
        return self._run("finish", *self.finish_request(receipt)) == 1

    def release(self, receipt: str) -> bool:
        return self._run("release", receipt) == 1

    def dead_letter(self, received: Received, reason: str) -> bool:
        if not reason:
            raise ValueError("a dead letter needs a reason")
        return self._run("finish", *self.finish_request(received.receipt, reason)) == 1

    # -- operator plane ------------------------------------------------------------------------
    def _list_dead(self, limit: int) -> list[DeadLetter]:
        with self._translated_errors():
            ranked = self._client.zrange(self._key("dead_order"), 0, limit - 1, withscores=True)
            entries = self._client.hmget(self._key("dead"), [mid for mid, _ in ranked]) if ranked else []
        return [
            _dead_letter(mid, entry, dead_at) for (mid, dead_at), entry in zip(ranked, entries, strict=True) if entry
        ]

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        with self._translated_errors():
            entry = self._client.hget(self._key("dead"), message_id)
            dead_at = self._client.zscore(self._key("dead_order"), message_id)
        return _dead_letter(message_id, entry, dead_at or 0.0) if entry else None

    def _redrive_ids(self, message_ids: list[str]) -> list[str]:
        return list(self._run("redrive", _score(self._clock()), *message_ids))

    def _redrive_oldest(self, limit: int | None) -> list[str]:
        moved: list[str] = []
        while limit is None or len(moved) < limit:
            chunk = _REDRIVE_CHUNK if limit is None else min(_REDRIVE_CHUNK, limit - len(moved))
            with self._translated_errors():
                oldest = self._client.zrange(self._key("dead_order"), 0, chunk - 1)
            done = self._redrive_ids(oldest) if oldest else []
            moved.extend(done)
            if not done:
                break
        return moved

    def remove_dead(self, message_id: str) -> bool:
        return self._run("remove_dead", message_id) == 1

    def stats_source(self) -> StatsSource:
        return self

    def stats(self) -> QueueStats:
        """Counts in one MULTI; the oldest enqueue time is read from the next message on the ready list and the
        next delayed one only (two lookups, not a scan), so it is the age of what is next in line."""
        now = _score(self._clock())
        with self._translated_errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.llen(self._key("ready"))
            for name in ("delayed", "inflight"):
                pipe.zcount(self._key(name), "-inf", now)
                pipe.zcount(self._key(name), f"({now}", "+inf")
            pipe.hlen(self._key("dead"))
            pipe.lindex(self._key("ready"), -1)
            pipe.zrange(self._key("delayed"), 0, 0)
            ready, delayed_due, delayed, expired, in_flight, dead, next_ready, next_delayed = pipe.execute()
            heads = [mid for mid in (next_ready, *next_delayed) if mid]
            pipe = self._client.pipeline(transaction=False)
            for mid in heads:
                pipe.hget(self._message_key(mid), "enqueued")
            times = pipe.execute() if heads else []
        known = [float(t) for t in times if t is not None]
        return QueueStats(
            ready=ready + delayed_due + expired,
            delayed=delayed,
            in_flight=in_flight,
            dead=dead,
            oldest_enqueued_at=min(known) if known else None,
        )

    def peek(self, limit: int = 5) -> list[Peeked]:
        """Reads the ids in receive order in one MULTI (the ready list from its popping end, then delayed ones
        that are due, then in-flight ones whose deadline passed, then delayed ones not yet due), then their
        bodies; a message finished between the two reads is left out. Nothing is written."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        now = _score(self._clock())
        with self._translated_errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.lrange(self._key("ready"), -limit, -1)
            pipe.zrangebyscore(self._key("delayed"), "-inf", now, start=0, num=limit, withscores=True)
            pipe.zrangebyscore(self._key("inflight"), "-inf", now, start=0, num=limit, withscores=True)
            pipe.zrangebyscore(self._key("delayed"), f"({now}", "+inf", start=0, num=limit, withscores=True)
            ready, due, expired, later = pipe.execute()
            order: list[tuple[str, str, float | None]] = [(mid, "ready", None) for mid in reversed(ready)]
            order += [(mid, "ready", float(at)) for mid, at in (*due, *expired)]
            order += [(mid, "delayed", float(at)) for mid, at in later]
            order = order[:limit]
            ids = [mid for mid, _, _ in order]
            pipe = self._client.pipeline(transaction=True)
            for mid in ids:
                pipe.hmget(self._message_key(mid), ["body", "enqueued", "count"])
            rows = pipe.execute() if ids else []
        return [
            Peeked(mid, body, state, at, int(count or 0), float(when or 0.0))
            for (mid, state, at), (body, when, count) in zip(order, rows, strict=True)
            if body is not None
        ]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- internals -----------------------------------------------------------------------------
    def _receive_now(self, max_messages: int, visibility_timeout_s: float) -> tuple[list[Received], float | None]:
        """One receive script: the messages, and when there are none, when the next one becomes receivable."""
        now = self._clock()
        read_delayed = now >= self._delayed_due or now >= self._next_delayed_read
        read_expiry = now >= self._next_expiry_read
        if read_expiry:
            self._next_expiry_read = now + EXPIRY_READ_S
        tokens = [secrets.token_urlsafe(12) for _ in range(max_messages)]
        rows, next_due, *delayed_head = self._run(
            "receive",
            _score(now),
            _score(now + visibility_timeout_s),
            max_messages,
            self.max_receive_count,
            _exceeded_template(self.max_receive_count),
            "1" if read_delayed else "0",
            "1" if read_expiry else "0",
            *tokens,
        )
        if delayed_head:  # the script read the delayed set: its head is what is due next (races cost a read)
            self._delayed_due = float(delayed_head[0]) if delayed_head[0] else float("inf")
            self._next_delayed_read = now + DELAYED_READ_S
        received = [Received(mid, body, receipt, int(n), float(enqueued)) for mid, body, receipt, n, enqueued in rows]
        return received, float(next_due) if next_due else None

    def _block(self, timeout_s: float) -> bool:
        """Sleep on the wake flag up to ``timeout_s`` seconds; True when it was set (and is now taken)."""
        with self._translated_errors():
            return self._client.bzpopmin(self._key("wake"), timeout=round(timeout_s, 3)) is not None

    def _run(self, script: str, *args: object) -> Any:
        with self._translated_errors():
            return self._scripts[script](keys=self.keys, args=list(args))

    def _key(self, name: str) -> str:
        return self.keys[KEY_NAMES.index(name)]

    def _message_key(self, message_id: str) -> str:
        """The hash of one message: body, enqueued, count, receipt (see the scripts' key layout)."""
        return self.keys[0] + message_id

    @contextlib.contextmanager
    def _translated_errors(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailable(f"{self!r}: redis unreachable: {exc}") from None
        except redis.exceptions.RedisError as exc:
            raise BackendUnavailable(f"{self!r}: redis error: {exc}") from None


def _split_url(url: str) -> tuple[str, str, str]:
    """``(url for redis-py, prefix, queue)``: our two query parameters taken out, the others kept."""
    client_url, ours = redis_url(url, "RELAY_QUEUE", frozenset({"prefix", "queue"}))
    prefix, queue = ours.get("prefix", DEFAULT_PREFIX), ours.get("queue", DEFAULT_QUEUE)
    _check_names(prefix, queue)
    return client_url, prefix, queue


def _check_names(prefix: str, queue: str) -> None:
    for what, value in (("prefix", prefix), ("queue", queue)):
        if not _NAME.match(value):
            raise QueueConfigError(f"redis queue {what} {value!r} must be 1-100 of A-Z a-z 0-9 _ . : -")


def _score(unix_s: float) -> str:
    """A time as the exact decimal string the scripts use as a sorted-set score."""
    return repr(float(unix_s))


def _exceeded_template(max_receive_count: int) -> str:
    """:func:`exceeded_reason` with a Lua ``%d`` where the count goes, so the wording stays defined once."""
    marker = 918273645
    return exceeded_reason(marker, max_receive_count).replace("%", "%%").replace(str(marker), "%d")


def _dead_letter(message_id: str, entry: str, dead_at: float) -> DeadLetter:
    data = json.loads(entry)
    return DeadLetter(message_id, data["body"], data["reason"], float(dead_at), int(data["receive_count"]))
