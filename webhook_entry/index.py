"""SCF function 3: RunningHub's webhook, through an API gateway trigger (integrated response) or a function URL.

The event is the gateway's request (``httpMethod``, ``path``, ``body``, ``isBase64Encoded``; docs/platform.md
§1); the answer is ``{"isBase64Encoded": false, "statusCode", "headers", "body"}``. All the work is
:class:`webhook_entry.gate.WebhookGate`'s: check the URL's mac, note the webhook in the ledger, send at most one
POLL hint per hop. Settings, the ledger and the queue are opened on the first call and kept for the warm
container (:func:`reset` forgets them, for tests). Configuration errors raise (one line naming the variable):
the gateway answers 5xx and the vendor retries, while polling finds every task anyway.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relay_core import logs
from relay_core import settings as settings_mod
from webhook_entry.gate import MAX_BODY_BYTES, Answer, TokenBucket, WebhookGate

if TYPE_CHECKING:
    from relay_core.settings import RelaySettings

log = logs.get("webhook")
_gate: WebhookGate | None = None
#: the entry's time source for ledger writes; tests in virtual time replace it through :func:`reset`
clock: Callable[[], float] = time.time


def build_gate(settings: RelaySettings, *, clock: Callable[[], float] = time.time) -> WebhookGate:
    """A gate on the ledger and queue the settings name; ``ConfigError`` without ``RELAY_WEBHOOK_SECRET``."""
    from jobqueue import open_ledger, open_queue

    secret = settings_mod.require(
        settings.webhook_secret.reveal(), "RELAY_WEBHOOK_SECRET", "webhook URLs cannot be checked"
    )
    rate = settings.webhook_rate_per_s
    return WebhookGate(
        open_ledger(settings.ledger_url()),
        open_queue(settings.queue_url(), max_receive_count=settings.max_receive_count, clock=clock),
        secret,
        bucket=TokenBucket(rate, burst=2 * rate),
        clock=clock,
    )


def _get_gate() -> WebhookGate:
    global _gate
    if _gate is None:
        loaded = settings_mod.load()
        logs.setup(loaded.log_level)
        _gate = build_gate(loaded, clock=clock)
    return _gate


def reset(time_source: Callable[[], float] = time.time) -> None:
    """Forget the warm-container cache; the next call opens everything again and keeps time by ``time_source``."""
    global _gate, clock
    if _gate is not None:
        _gate.queue.close()
        _gate.ledger.close()
    _gate = None
    clock = time_source


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    """SCF entry for the webhook's HTTP trigger; see the module docstring."""
    gate = _get_gate()
    request_id = context.get("request_id") if isinstance(context, dict) else None
    with logs.bind(request_id=request_id):
        event = event if isinstance(event, dict) else {}
        body = _body(event)
        if body is None:
            answer = Answer(400, {"ok": False, "action": "bad_body"})
        else:
            answer = gate.handle(str(event.get("httpMethod") or ""), str(event.get("path") or ""), body)
    return {
        "isBase64Encoded": False,
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json"},
        "body": answer.encoded().decode(),
    }


def _body(event: dict[str, Any]) -> bytes | None:
    """The request body as bytes (decoded when the gateway base64-encoded it); ``None`` when unreadable or over
    :data:`MAX_BODY_BYTES`."""
    raw = event.get("body") or ""
    if not isinstance(raw, str) or len(raw) > 2 * MAX_BODY_BYTES:
        return None
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = raw.encode()
    return data if len(data) <= MAX_BODY_BYTES else None
