"""One signed call to the TDMQ-for-CMQ data plane, with its failures translated to :mod:`jobqueue.errors`.

::

    network error, timeout, HTTP 5xx, code 6000   -> BackendUnavailable  (retryable)
    code 41xx (auth/signature), HTTP 401/403       -> QueueConfigError    names the TENCENTCLOUD_* variables
    code 4440 (queue does not exist)               -> QueueConfigError    names RELAY_QUEUE
    any other non-zero code                        -> CmqApiError(QueueError) with .code: the caller decides
                                                      about 7000 (empty queue) and 4430 (stale receipt)

The error codes come from the legacy CMQ documentation and are (unconfirmed) for TDMQ: the empty-queue and
stale-receipt tests also accept the wording of the message. Error texts never carry the secret key or token:
the server's message passes through :func:`relay_core.logs.redact` and the current secrets are masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from jobqueue.errors import BackendUnavailable, QueueConfigError, QueueError
from jobqueue.queue.cmq_signing import SIGN_PATH, SignatureMethod, signed_params
from relay_core import logs
from tencent_plumbing.credentials import CredentialsMissing, CredentialsProvider, TencentCredentials

NO_MESSAGE_CODE = 7000
STALE_RECEIPT_CODE = 4430
QUEUE_MISSING_CODE = 4440
SERVER_ERROR_CODE = 6000
_AUTH_CODES = range(4100, 4200)
CREDENTIALS_HINT = (
    "check TENCENTCLOUD_SECRETID, TENCENTCLOUD_SECRETKEY and TENCENTCLOUD_SESSIONTOKEN (temporary keys need "
    "the token), the role's CMQ permissions and the clock"
)


class CmqApiError(QueueError):
    """CMQ answered a non-zero ``code`` that is neither an auth nor an availability problem."""

    def __init__(self, action: str, code: int, message: str) -> None:
        super().__init__(f"CMQ {action} failed: code {code}: {message}")
        self.code = code
        self.server_message = message

    @property
    def is_empty(self) -> bool:
        """The queue had nothing to receive (code 7000 or a "no message" wording)."""
        return self.code == NO_MESSAGE_CODE or "no message" in self.server_message.lower()

    @property
    def is_stale_receipt(self) -> bool:
        """The receipt handle is not (or no longer) the current one of a message."""
        return self.code == STALE_RECEIPT_CODE or "receipt" in self.server_message.lower()


class CmqClient:
    """Signs and posts one action; returns the JSON body when ``code == 0``, raises otherwise.

    ``credentials`` is called for every request (role credentials expire and SCF refreshes them).
    An injected ``http`` client is not closed by :meth:`close`; one built here is.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        credentials: CredentialsProvider,
        http: httpx.Client | None = None,
        sign_method: SignatureMethod = SignatureMethod.HMAC_SHA256,
        timeout_s: float = 10.0,
    ) -> None:
        url = httpx.URL(endpoint.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise QueueConfigError(f"RELAY_QUEUE: CMQ endpoint {endpoint!r} is not an http(s) URL")
        # The Host header httpx sends, which the server signs with: the port only when it is not the default.
        self.host = f"{url.host}:{url.port}" if url.port else url.host
        self.url = f"{url.scheme}://{self.host}{SIGN_PATH}"
        self._credentials = credentials
        self._http = http or httpx.Client()
        self._owns_http = http is None
        self.sign_method = SignatureMethod(sign_method)
        self.timeout_s = timeout_s

    def call(self, action: str, params: Mapping[str, object], *, wait_s: float = 0) -> dict[str, Any]:
        """POST ``action``; ``wait_s`` is the server-side long poll, added to the request timeout."""
        creds = self._current_credentials()
        form = signed_params(action, params, host=self.host, credentials=creds, method=self.sign_method)
        try:
            response = self._http.post(self.url, data=form, timeout=self.timeout_s + wait_s)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"CMQ {action}: cannot reach {self.host}: {type(exc).__name__}") from exc
        return self._decode(action, response, creds)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _current_credentials(self) -> TencentCredentials:
        try:
            return self._credentials()
        except CredentialsMissing as exc:
            raise QueueConfigError(f"CMQ: {exc}") from None

    def _decode(self, action: str, response: httpx.Response, creds: TencentCredentials) -> dict[str, Any]:
        status = response.status_code
        if status >= 500:
            raise BackendUnavailable(f"CMQ {action}: HTTP {status} from {self.host}")
        if status in (401, 403):
            raise QueueConfigError(f"CMQ {action}: HTTP {status} from {self.host}: {CREDENTIALS_HINT}")
        try:
            body = response.json()
            code = int(body["code"])
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable(f"CMQ {action}: HTTP {status} from {self.host} is not a CMQ JSON answer") from None
        if code == 0:
            return body
        message = _clean(str(body.get("message", "")), creds)
        if code in _AUTH_CODES:
            raise QueueConfigError(f"CMQ rejected the credentials (code {code}: {message}): {CREDENTIALS_HINT}")
        if code == QUEUE_MISSING_CODE:
            raise QueueConfigError(f"RELAY_QUEUE: CMQ {action}: queue does not exist (code {code}: {message})")
        if code == SERVER_ERROR_CODE:
            raise BackendUnavailable(f"CMQ {action}: server error (code {code}: {message})")
        raise CmqApiError(action, code, message)


def _clean(message: str, creds: TencentCredentials) -> str:
    """A server message fit for an exception: registered and current secrets masked, length capped."""
    for secret in (creds.secret_key, creds.token):
        if secret:
            message = message.replace(secret, "***")
    return logs.redact(message)[:300]
