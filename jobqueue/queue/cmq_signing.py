"""Request signing of the TDMQ-for-CMQ data plane, as pure functions.

A request is a form ``POST`` to ``/v2/index.php`` carrying the action's own parameters plus ``Action``,
``SecretId``, ``Nonce`` (random integer), ``Timestamp`` (unix seconds), ``SignatureMethod`` and, for temporary
credentials, ``Token``. The string to sign is::

    POST<host>/v2/index.php?<k1>=<v1>&<k2>=<v2>...

with the parameters sorted by name, values written raw (not URL-encoded) and ``_`` in names written as ``.``
(the server is PHP, which turns ``.`` in form names into ``_``; the signature uses the dotted form).
``Signature`` is base64(HMAC(secret key, string to sign)) with SHA-256 or SHA-1.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import random
import time
from collections.abc import Mapping

from tencent_plumbing.credentials import TencentCredentials

SIGN_PATH = "/v2/index.php"
_NONCE_MAX = 2**31 - 1


class SignatureMethod(str, enum.Enum):
    HMAC_SHA256 = "HmacSHA256"
    HMAC_SHA1 = "HmacSHA1"


_DIGESTS = {SignatureMethod.HMAC_SHA256: hashlib.sha256, SignatureMethod.HMAC_SHA1: hashlib.sha1}


def string_to_sign(host: str, params: Mapping[str, object], method: str = "POST", path: str = SIGN_PATH) -> str:
    """The canonical string: ``method + host + path + "?" + sorted k=v pairs``; ``Signature`` is left out.

    ``host`` is the request's Host header: ``cmq-gz.public.tencenttdmq.com``, or ``127.0.0.1:8080``.
    """
    pairs = "&".join(f"{name.replace('_', '.')}={params[name]}" for name in sorted(params) if name != "Signature")
    return f"{method.upper()}{host}{path}?{pairs}"


def sign(text: str, secret_key: str, method: SignatureMethod = SignatureMethod.HMAC_SHA256) -> str:
    """base64 of HMAC(secret_key, text) with the digest of ``method``."""
    digest = hmac.new(secret_key.encode(), text.encode(), _DIGESTS[SignatureMethod(method)]).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_params(
    action: str,
    action_params: Mapping[str, object],
    *,
    host: str,
    credentials: TencentCredentials,
    method: SignatureMethod = SignatureMethod.HMAC_SHA256,
    timestamp: int | None = None,
    nonce: int | None = None,
) -> dict[str, str]:
    """The complete form of one request: the action's parameters, the common ones and ``Signature``.

    ``timestamp`` and ``nonce`` default to now and a random integer; tests pass them to get a fixed vector.
    """
    form = {name: str(value) for name, value in action_params.items()}
    form.update(
        Action=action,
        SecretId=credentials.secret_id,
        Nonce=str(nonce if nonce is not None else random.randint(1, _NONCE_MAX)),
        Timestamp=str(timestamp if timestamp is not None else int(time.time())),
        SignatureMethod=SignatureMethod(method).value,
    )
    if credentials.token:
        form["Token"] = credentials.token
    form["Signature"] = sign(string_to_sign(host, form), credentials.secret_key, method)
    return form
