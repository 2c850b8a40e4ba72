"""Verify a Tencent Cloud API 3.0 request signature (``TC3-HMAC-SHA256``), from the documented algorithm.

``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<Date>/<service>/tc3_request, SignedHeaders=<h1;h2>,
Signature=<hex>``, where

* CanonicalRequest = ``Method \\n URI \\n QueryString \\n CanonicalHeaders \\n SignedHeaders \\n
  hex(sha256(payload))``; CanonicalHeaders is ``name:value\\n`` per signed header, names and values
  lower-cased and trimmed, in the order SignedHeaders lists them (which must include ``content-type`` and
  ``host``); the payload hash is of the body, or of ``UNSIGNED-PAYLOAD`` when ``X-TC-Content-SHA256`` says so;
* StringToSign = ``TC3-HMAC-SHA256 \\n X-TC-Timestamp \\n <Date>/<service>/tc3_request \\n
  hex(sha256(CanonicalRequest))``, with ``Date`` the UTC date of the timestamp;
* SecretDate = HMAC("TC3" + SecretKey, Date); SecretService = HMAC(SecretDate, service);
  SecretSigning = HMAC(SecretService, "tc3_request"); Signature = hex(HMAC(SecretSigning, StringToSign)).

Written independently of the SDK's signer so that a bug there cannot verify itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_S = 300
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9]+)"
    r"/tc3_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class AuthError(Exception):
    """A request that fails authentication; ``code`` is the API 3.0 error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    match = _AUTH.match(value.strip())
    if match is None:
        raise AuthError("AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256 Credential=...")
    signed = tuple(match["headers"].split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise AuthError("AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host")
    return Authorization(match["id"], match["date"], match["service"], signed, match["signature"])


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    secret_key: str,
    auth: Authorization,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The signature the request should carry (``headers`` keyed by lower-case name)."""
    if headers.get("x-tc-content-sha256", "").strip().upper() == "UNSIGNED-PAYLOAD":
        body = b"UNSIGNED-PAYLOAD"
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in auth.signed_headers)
    canonical_request = "\n".join(
        [
            method,
            path,
            query,
            canonical_headers,
            ";".join(auth.signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{auth.date}/{auth.service}/tc3_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            headers.get("x-tc-timestamp", ""),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), auth.date), auth.service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    *,
    secret_id: str,
    secret_key: str,
    token: str | None,
    now_s: float,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Authorization:
    """Check one request; returns its parsed Authorization or raises :class:`AuthError`."""
    auth = parse_authorization(headers.get("authorization", ""))
    if auth.secret_id != secret_id:
        raise AuthError("AuthFailure.SecretIdNotFound", "the SecretId does not exist")
    stamp = headers.get("x-tc-timestamp", "")
    if not stamp.isdigit():
        raise AuthError("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing or not an integer")
    if abs(now_s - int(stamp)) > MAX_SKEW_S:
        raise AuthError("AuthFailure.SignatureExpire", "the signature expired (timestamp more than 300 s away)")
    if datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%d") != auth.date:
        raise AuthError("AuthFailure.SignatureFailure", "the credential date is not the UTC date of the timestamp")
    wanted = expected_signature(secret_key, auth, method, path, query, headers, body)
    if not hmac.compare_digest(wanted, auth.signature):
        raise AuthError("AuthFailure.SignatureFailure", "the signature does not match")
    sent_token = headers.get("x-tc-token") or None
    if sent_token != token:
        raise AuthError("AuthFailure.TokenFailure", "X-TC-Token is missing or invalid")
    return auth
