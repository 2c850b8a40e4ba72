"""What a vendor webhook turns into: a checked URL, a ledger note and at most one POLL hint per hop.

:class:`WebhookGate` answers ``POST …/runninghub/{task_id}/{mac}`` with a JSON body ``{"event": "TASK_END",
"taskId": <vendor task id>, "eventData": "…"}`` (docs/platform.md §5; unsigned). In order:

1. **Rate limit** (a token bucket per process, before any work): over it → 429 (the vendor retries later).
2. **URL**: the path's task id must be a safe id and its mac the task's (:mod:`relay_core.webhooks`); else 404
   with a log line: a forged or mangled URL learns nothing, and a URL we made never gets it.
3. **Body**: ``event`` ``TASK_END`` and a ``taskId`` → else 400. The vendor task id is only a hint.
4. **Ledger**: a vendor task id that the index gives to another task is dropped (200). Else
   ``Ledger.note_webhook`` decides; once per hop, a POLL hint is sent at once — the task's first POLL hop at the
   next seq, asking about the job the ledger names: the recorded job; the job of a submit that turned ambiguous
   (its create answer was lost: the webhook is how we learn its id, and the ledger adopts it as the submission);
   or a second job of the task while the recorded one is not seen finished (the poll uses whichever finished
   first). A duplicate webhook, a webhook after the job was seen finished, for an unknown (or pruned) task or a
   parked one is answered 200 and sends nothing, so the vendor stops retrying.

Why this is safe: the hint is an ordinary hop. The poll asks the vendor, so a forged hint costs one status query;
two hints for one hop are one hop to the ledger (the second is stale); a hint racing the task's own delayed POLL
at the same seq makes that one stale. Ledger or queue unavailable → 503 (the vendor retries).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobqueue.errors import PoisonMessage, QueueError
from jobqueue.ledger.base import Ledger, WebhookState
from jobqueue.message import parse
from jobqueue.queue.base import Queue
from relay_core import logs
from relay_core.ids import is_safe_id
from relay_core.webhooks import mac_ok, parse_path

log = logs.get("webhook")
MAX_BODY_BYTES = 256 * 1024
_VENDOR_ID_CHARS = 128


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass
class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up; :meth:`take` spends one if there is one."""

    rate_per_s: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._tokens, self._at = self.burst, self.clock()

    def take(self) -> bool:
        """``True`` (and one token fewer) when a token is left, else ``False``."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


def _reply(status: int, action: str) -> Answer:
    return Answer(status, {"ok": 200 <= status < 300, "action": action})


class WebhookGate:
    """Turns one webhook request into an :class:`Answer`; see the module docstring. Thread-safe."""

    def __init__(
        self,
        ledger: Ledger,
        queue: Queue,
        secret: str,
        *,
        bucket: TokenBucket,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.queue = queue
        self._secret = secret
        self.bucket = bucket
        self.clock = clock

    def handle(self, method: str, path: str, body: bytes) -> Answer:
        """The answer to ``method path`` with ``body``; never raises for anything a caller sends."""
        if method != "POST":
            return _reply(405, "method")
        if not self.bucket.take():
            log.warning("webhook over the rate limit: refused")
            return _reply(429, "rate_limited")
        where = parse_path(path)
        if where is None or not is_safe_id(where[0]) or not mac_ok(self._secret, *where):
            log.warning("webhook with a URL we did not make: dropped", extra={"path": path[:200]})
            return _reply(404, "not_found")
        task_id = where[0]
        with logs.bind(task_id=task_id):
            vendor_task_id = _vendor_task_id(body)
            if vendor_task_id is None:
                log.warning("webhook body is not a TASK_END with a taskId: dropped")
                return _reply(400, "bad_body")
            try:
                return self._note(task_id, vendor_task_id)
            except QueueError as exc:  # ledger or queue down: the vendor retries, polling covers meanwhile
                log.error("webhook not handled: backend unavailable", extra={"error": str(exc)})
                return _reply(503, "unavailable")

    def _note(self, task_id: str, vendor_task_id: str) -> Answer:
        owner = self.ledger.by_vendor_task(vendor_task_id)
        if owner is not None and owner.task_id != task_id:
            log.warning("webhook names another task's vendor job: dropped", extra={"vendor_task_id": vendor_task_id})
            return _reply(200, "foreign_vendor_task")
        note = self.ledger.note_webhook(task_id, vendor_task_id, self.clock())
        if note.poll_message is None or note.vendor_task_id is None:
            log.info("webhook noted, no hint", extra={"vendor_task_id": vendor_task_id, "note": note.state.value})
            return _reply(200, note.state.value)
        if note.state is WebhookState.ADOPTED:
            log.warning("webhook named an ambiguous submit's job: adopted", extra={"vendor_task_id": vendor_task_id})
        try:
            first_poll = parse(note.poll_message)
        except PoisonMessage as exc:
            log.error("ledger's POLL hop is unreadable: no hint", extra={"reason": str(exc)})
            return _reply(200, "no_message")
        hint = first_poll.replace(seq=note.seq, attempt=0, not_before=None, vendor_task_id=note.vendor_task_id)
        self.queue.send(hint.dumps(), 0.0)
        log.info("webhook: POLL hint sent", extra={"vendor_task_id": note.vendor_task_id, "seq": note.seq})
        return _reply(200, "hint" if note.state is WebhookState.HINT else note.state.value)


def _vendor_task_id(body: bytes) -> str | None:
    """The ``taskId`` of a ``TASK_END`` body (a string of digits or a number), ``None`` for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("event") != "TASK_END":
        return None
    value = data.get("taskId")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > _VENDOR_ID_CHARS:
        return None
    return value.strip() if is_safe_id(value.strip()) else None
