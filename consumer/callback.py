"""The backend callback: ``POST {RELAY_BACKEND_URL}/internal/task/update``, signed.

Body, exactly the backend's JSON: ``{"taskId", "status": "done"|"failed", "resultUrls": ["cos://output/..."]}``
on done, ``"errorReason"`` on failed, ``"vendorTaskId"`` when known. Headers:

* ``X-Relay-Timestamp``: unix seconds
* ``X-Relay-Delivery``: stable per task and status, so the backend can drop a repeat
* ``X-Relay-Signature``: ``sha256=<hex HMAC-SHA256(secret, "{timestamp}.{delivery}.{raw body}")>`` — the delivery
  id is signed too, so a captured report cannot be replayed under a fresh delivery id

:func:`verify_signature` is the function the backend team copies (it needs only the standard library).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay_core import logs
from relay_core.domain import Outcome, Status

if TYPE_CHECKING:  # httpx is imported when a reporter is built: verify_signature needs the stdlib only
    import httpx

PATH = "/internal/task/update"
REPLAY_WINDOW_S = 300

log = logs.get("consumer.callback")


def report_body(task_id: str, outcome: Outcome) -> bytes:
    """The exact JSON the backend expects, compact UTF-8 (Chinese reasons unescaped)."""
    body: dict[str, object] = {"taskId": task_id, "status": outcome.status.value}
    if outcome.status is Status.DONE:
        body["resultUrls"] = [f"cos://{key}" for key in outcome.result_keys]
    else:
        body["errorReason"] = outcome.error_reason
    if outcome.vendor_task_id:
        body["vendorTaskId"] = outcome.vendor_task_id
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def delivery_id(task_id: str, status: Status) -> str:
    return hashlib.sha256(f"scf-relay:{task_id}:{status.value}".encode()).hexdigest()[:32]


def sign(secret: str, timestamp: int, delivery: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "{timestamp}.{delivery}.{raw body}")>``."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    mac = hmac.new(secret.encode(), f"{timestamp}.{delivery}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str, headers: Mapping[Any, Any], body: bytes, now: float | None = None, window_s: int = REPLAY_WINDOW_S
) -> bool:
    """True if ``body`` and its ``X-Relay-Delivery`` were signed with ``secret`` within ``window_s`` s of ``now``.

    Never raises: a missing, non-ASCII, bytes-typed or otherwise malformed header, a body that is not bytes, or an
    empty secret all give False (answer 401). Copy this function into the backend (standard library only): check
    it before parsing the body, then deduplicate on ``X-Relay-Delivery``.
    """
    if not secret or not isinstance(secret, str) or not isinstance(body, (bytes, bytearray)):
        return False
    fields: dict[str, str] = {}
    for name, value in headers.items():
        try:
            name = name.decode("ascii") if isinstance(name, (bytes, bytearray)) else str(name)
            value = value.decode("ascii") if isinstance(value, (bytes, bytearray)) else value
        except UnicodeDecodeError:
            continue  # a header that is not ASCII cannot be one of ours
        if isinstance(value, str) and value.isascii():
            fields[name.lower()] = value
    timestamp_text = fields.get("x-relay-timestamp", "")
    delivery = fields.get("x-relay-delivery", "")
    signature = fields.get("x-relay-signature", "")
    if not (timestamp_text.isdigit() and len(timestamp_text) <= 12 and delivery and signature):
        return False
    timestamp = int(timestamp_text)
    if abs((time.time() if now is None else now) - timestamp) > window_s:
        return False
    expected = sign(secret, timestamp, delivery, bytes(body))
    return hmac.compare_digest(expected.encode(), signature.encode())


class Delivery(str, enum.Enum):
    DELIVERED = "delivered"  # 2xx: the backend has it
    RETRY = "retry"  # connect error, timeout, 5xx, 429: try again later
    REJECTED = "rejected"  # other 4xx: our request is wrong (secret, URL); retrying will not help


@dataclass(frozen=True)
class ReportResult:
    delivery: Delivery
    detail: str = ""


class BackendReporter:
    """Posts reports. ``client`` is the network seam (tests pass one; the default has short timeouts)."""

    def __init__(
        self, base_url: str, secret: str, *, client: httpx.Client | None = None, timeout_s: float = 10
    ) -> None:
        if not secret:
            raise ValueError("the callback secret is empty: set RELAY_CALLBACK_SECRET")
        self.url = base_url.rstrip("/") + PATH
        self._secret = secret
        if client is None:
            import httpx

            client = httpx.Client(timeout=timeout_s)
        self._client = client

    def post(self, task_id: str, outcome: Outcome, now: float | None = None) -> ReportResult:
        import httpx

        body = report_body(task_id, outcome)
        timestamp = int(time.time() if now is None else now)
        delivery = delivery_id(task_id, outcome.status)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Relay-Timestamp": str(timestamp),
            "X-Relay-Delivery": delivery,
            "X-Relay-Signature": sign(self._secret, timestamp, delivery, body),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return ReportResult(Delivery.RETRY, f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return ReportResult(Delivery.DELIVERED, str(response.status_code))
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code == 429 or response.status_code >= 500:
            return ReportResult(Delivery.RETRY, detail)
        return ReportResult(Delivery.REJECTED, detail)

    def close(self) -> None:
        self._client.close()
