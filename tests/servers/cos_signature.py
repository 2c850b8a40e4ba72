"""The COS request signature (XML API "q-sign-algorithm=sha1"), computed the way the server checks it.

Restated from ``qcloud_cos/cos_auth.py`` (``CosS3Auth.__call__``)::

    KeyTime      = q-key-time                       "start;end" in unix seconds
    SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
    HttpString   = lower(method) \\n path \\n params \\n headers \\n
                   path: "/" + the key, not percent-encoded ("/" for bucket requests)
                   params/headers: "k=v" joined by "&", sorted, k = lower(quote(name)), v = quote(value),
                   quote() keeping only "-_.~" unescaped; only the names listed in q-url-param-list /
                   q-header-list, which are those lower-cased names joined by ";"
    StringToSign = "sha1" \\n q-sign-time \\n hex(SHA1(HttpString)) \\n
    Signature    = hex(HMAC-SHA1(SignKey, StringToSign))

The SDK sends it in the ``Authorization`` header; presigned URLs carry the same fields as query parameters.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

AUTH_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)


def canonical(pairs: Mapping[str, bytes | str]) -> dict[str, str]:
    """``{lower(quote(name)): quote(value)}`` for values given as str (UTF-8) or raw bytes."""
    return {quote(name, safe="-_.~").lower(): quote(value, safe="-_.~") for name, value in pairs.items()}


def signature(
    secret_key: str,
    auth: Mapping[str, str],
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    """The expected ``q-signature`` for ``auth`` (the parsed fields) over ``params``/``headers`` (already
    :func:`canonical`). A listed name missing from the request raises ``KeyError``."""
    listed = lambda field: sorted(name for name in auth.get(field, "").split(";") if name)  # noqa: E731
    param_text = "&".join(f"{name}={params[name]}" for name in listed("q-url-param-list"))
    header_text = "&".join(f"{name}={headers[name]}" for name in listed("q-header-list"))
    http_string = f"{method.lower()}\n{path}\n{param_text}\n{header_text}\n"
    digest = hashlib.sha1(http_string.encode()).hexdigest()
    string_to_sign = f"sha1\n{auth['q-sign-time']}\n{digest}\n"
    sign_key = hmac.new(secret_key.encode(), auth["q-key-time"].encode(), hashlib.sha1).hexdigest()
    return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()


def parse_authorization(text: str) -> dict[str, str]:
    """The ``q-*`` fields of an ``Authorization`` header value."""
    fields = dict(item.split("=", 1) for item in text.split("&") if "=" in item)
    return {name: fields[name] for name in AUTH_FIELDS if name in fields}


def in_window(sign_time: str, now: float) -> bool:
    """Whether ``now`` falls in ``"start;end"``."""
    try:
        start, end = (int(part) for part in sign_time.split(";"))
    except ValueError:
        return False
    return start <= now <= end
