"""A local TDMQ-for-CMQ data-plane server: real HTTP on 127.0.0.1, signatures verified as documented.

``LocalCmqServer(secret_id, secret_key, token=None)`` serves ``POST /v2/index.php`` in a thread (port chosen
by the OS). Every request is checked as the CMQ data-plane documentation describes: ``Action``, ``SecretId``, ``Nonce``,
``Timestamp`` (within ``max_skew_s`` of real time, nonce not reused), ``SignatureMethod`` (HmacSHA256 or
HmacSHA1), ``Token`` when the server was given one, and ``Signature`` = base64(HMAC(key, "POST" + Host
header + "/v2/index.php?" + sorted k=v, raw values, "_" in names as ".")). The check is written here
independently of ``jobqueue.queue.cmq_signing`` so a bug there cannot verify itself. Failures answer 4100.

Queue semantics live in :mod:`tests.servers.cmq_broker`. Test tools: ``clock.advance(s)`` (with the default
:class:`Clock`), ``fail_next(n, status)`` (HTTP errors without a CMQ body), ``messages(queue)`` (state without
receiving), ``calls`` (actions accepted, in order).

The queue contract suite builds its CMQ queues on this server in ``tests/contract/queues.py``. The server is a
WSGI application (``server(environ, start_response)``) served by :class:`vendors.emulator.serving.LoopbackWsgiServer`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from tests.servers.cmq_broker import Clock, CmqBroker, CmqFault, QueueSpec
from vendors.emulator.serving import LoopbackWsgiServer, read_body, status_line

PATH = "/v2/index.php"
AUTH_FAILED = 4100
INVALID_PARAMETER = 4000
_DIGESTS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
_NUMBERED = re.compile(r"(?P<name>\w+)\.(?P<n>\d+)")


class LocalCmqServer(LoopbackWsgiServer):
    """The server; use as a context manager or ``start()`` / ``stop()``.

    ``start()`` after ``stop()`` serves again on a new OS-chosen port; the queues and messages stay.
    """

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        token: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        max_real_wait_s: float = 1.0,
        max_skew_s: float = 300,
    ) -> None:
        super().__init__(name="local-cmq")
        self.secret_id = secret_id
        self._secret_key = secret_key
        self._token = token
        self.clock = clock or Clock()
        self.broker = CmqBroker(self.clock, max_real_wait_s=max_real_wait_s)
        self.max_skew_s = max_skew_s
        self.calls: list[str] = []
        self._failures: list[int] = []
        self._nonces: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalCmqServer({self.endpoint if self.running else 'stopped'})"

    # -- lifetime (start, context manager: LoopbackWsgiServer) ----------------------------------
    def stop(self) -> None:
        """Stop answering; long polls in progress wake up and return what the broker has."""
        super().stop()
        self.broker.wake()

    @property
    def endpoint(self) -> str:
        return self.base_url

    # -- test tools --------------------------------------------------------------------------
    def create_queue(self, name: str, **attributes: Any) -> None:
        """Create (or change) a queue. Attributes of :class:`~tests.servers.cmq_broker.QueueSpec`:
        ``visibility_timeout_s=30``, ``max_msg_size_bytes=65536``, ``retention_s=43200``, ``dlq=None``,
        ``max_receive_count=5``, ``delay_s=0``, ``polling_wait_s=0``."""
        self.broker.create_queue(QueueSpec(name, **attributes))

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and a non-CMQ body."""
        with self._lock:
            self._failures.extend([status] * count)

    def messages(self, queue: str) -> list[dict[str, Any]]:
        return self.broker.snapshot(queue)

    # -- one request -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application: every request is a POST of a form (see :meth:`handle`)."""
        form_text = read_body(environ).decode("utf-8", errors="replace")
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        status, payload = self.handle(path, environ.get("HTTP_HOST", ""), form_text)
        is_json = not isinstance(payload, str)
        body = (json.dumps(payload, ensure_ascii=False) if is_json else payload).encode()
        content_type = "application/json" if is_json else "text/plain"
        start_response(status_line(status), [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def handle(self, path: str, host: str, form_text: str) -> tuple[int, Any]:
        """(HTTP status, JSON object or plain text) for one POST."""
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure, "injected failure"
        if path.split("?")[0] != PATH:
            return 404, {"code": INVALID_PARAMETER, "message": f"no such path {path}"}
        params = dict(parse_qsl(form_text, keep_blank_values=True))
        answer: dict[str, Any] = {"code": 0, "message": "", "requestId": uuid.uuid4().hex}
        try:
            self._verify(host, params)
            action = params["Action"]
            answer.update(self._dispatch(action, {k.replace("_", "."): v for k, v in params.items()}))
            self.calls.append(action)
        except CmqFault as fault:
            answer.update(code=fault.code, message=fault.message)
        return 200, answer

    def _verify(self, host: str, params: dict[str, str]) -> None:
        for name in ("Action", "SecretId", "Nonce", "Timestamp", "Signature"):
            if not params.get(name):
                raise CmqFault(AUTH_FAILED, f"(10100)authentication failed: {name} is missing")
        digest = _DIGESTS.get(params.get("SignatureMethod", "HmacSHA1"))
        if digest is None:
            raise CmqFault(AUTH_FAILED, "(10100)authentication failed: unknown SignatureMethod")
        if params["SecretId"] != self.secret_id:
            raise CmqFault(AUTH_FAILED, "(10100)authentication failed: secretId does not exist")
        if not params["Timestamp"].isdigit() or abs(time.time() - int(params["Timestamp"])) > self.max_skew_s:
            raise CmqFault(AUTH_FAILED, "(10100)authentication failed: Timestamp outside the allowed window")
        if self._token is not None and params.get("Token") != self._token:
            raise CmqFault(AUTH_FAILED, "(10100)authentication failed: Token is missing or invalid")
        pairs = "&".join(f"{k.replace('_', '.')}={params[k]}" for k in sorted(params) if k != "Signature")
        plain = f"POST{host}{PATH}?{pairs}"
        expected = base64.b64encode(hmac.new(self._secret_key.encode(), plain.encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected, params["Signature"]):
            raise CmqFault(AUTH_FAILED, "(10110)authentication failed: signature mismatch")
        nonce = (params["SecretId"], params["Nonce"], params["Timestamp"])
        with self._lock:
            if nonce in self._nonces:
                raise CmqFault(AUTH_FAILED, "(10100)authentication failed: Nonce reused")
            self._nonces.add(nonce)

    def _dispatch(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        queue = _required(params, "queueName")
        if action == "SendMessage":
            msg_ids = self.broker.send(queue, [_required(params, "msgBody")], _int(params, "delaySeconds"))
            return {"msgId": msg_ids[0]}
        if action == "BatchSendMessage":
            msg_ids = self.broker.send(queue, _numbered(params, "msgBody"), _int(params, "delaySeconds"))
            return {"msgList": [{"msgId": msg_id} for msg_id in msg_ids]}
        if action == "ReceiveMessage":
            return self.broker.receive(queue, 1, _int(params, "pollingWaitSeconds"))[0]
        if action == "BatchReceiveMessage":
            count = _int(params, "numOfMsg")
            if count is None:
                raise CmqFault(INVALID_PARAMETER, "numOfMsg is missing")
            return {"msgInfoList": self.broker.receive(queue, count, _int(params, "pollingWaitSeconds"))}
        if action == "DeleteMessage":
            self.broker.delete(queue, _required(params, "receiptHandle"))
            return {}
        if action == "BatchDeleteMessage":
            return self._batch_delete(queue, _numbered(params, "receiptHandle"))
        raise CmqFault(INVALID_PARAMETER, f"(10010)unknown Action {action!r}")

    def _batch_delete(self, queue: str, receipts: list[str]) -> dict[str, Any]:
        errors = []
        for receipt in receipts:
            try:
                self.broker.delete(queue, receipt)
            except CmqFault as fault:
                errors.append({"code": fault.code, "message": fault.message, "receiptHandle": receipt})
        if errors:
            raise CmqFault(errors[0]["code"], f"{len(errors)} of {len(receipts)} deletes failed")
        return {}


def _required(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise CmqFault(INVALID_PARAMETER, f"(10010){name} is missing")
    return params[name]


def _int(params: dict[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        raise CmqFault(INVALID_PARAMETER, f"(10010){name} is not an integer") from None


def _numbered(params: dict[str, str], name: str) -> list[str]:
    """``name.1``, ``name.2``... in numeric order."""
    found = [(int(m["n"]), v) for k, v in params.items() if (m := _NUMBERED.fullmatch(k)) and m["name"] == name]
    if not found:
        raise CmqFault(INVALID_PARAMETER, f"(10010){name}.n is missing")
    return [value for _n, value in sorted(found)]


# -- the contract registry's factory ------------------------------------------------------------
