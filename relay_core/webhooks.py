"""The vendor webhook URL of a task: ``{base}/runninghub/{task_id}/{mac}``, unforgeable for another task.

``mac`` is the first 32 hex digits of HMAC-SHA256(``RELAY_WEBHOOK_SECRET``, task id). The URL is the only thing a
webhook is trusted for: it names which of our tasks to look at. Its body (the vendor's task id and outputs) is a
hint recorded in the ledger, and the status query that follows decides (docs/platform.md §5: webhooks are
unsigned). Standard library only: the consumer (builds the URL) and the webhook entry (checks it) both use it.
"""

from __future__ import annotations

import hashlib
import hmac

MAC_HEX = 32
ROUTE = "runninghub"


def task_mac(secret: str, task_id: str) -> str:
    """First :data:`MAC_HEX` hex digits of HMAC-SHA256(``secret``, ``task_id``)."""
    return hmac.new(secret.encode(), task_id.encode(), hashlib.sha256).hexdigest()[:MAC_HEX]


def webhook_url(base_url: str, secret: str, task_id: str) -> str:
    """The ``webhookUrl`` a submit of ``task_id`` sends."""
    return f"{base_url.rstrip('/')}/{ROUTE}/{task_id}/{task_mac(secret, task_id)}"


def mac_ok(secret: str, task_id: str, mac: str) -> bool:
    """``mac`` is the task's (constant-time compare); ``False`` for an empty secret, whatever the mac."""
    return bool(secret) and hmac.compare_digest(task_mac(secret, task_id), mac.lower())


def parse_path(path: str) -> tuple[str, str] | None:
    """``(task_id, mac)`` of a path ending in ``/runninghub/{task_id}/{mac}`` (any prefix, e.g. an API gateway
    stage), ``None`` for any other shape. The task id is checked by the caller (``relay_core.ids.check_id``)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[-3] != ROUTE:
        return None
    task_id, mac = parts[-2], parts[-1]
    if len(mac) != MAC_HEX or any(c not in "0123456789abcdefABCDEF" for c in mac):
        return None
    return task_id, mac
