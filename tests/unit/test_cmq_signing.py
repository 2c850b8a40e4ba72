"""CMQ data-plane signing (docs/platform.md §2) against strings written out by hand, not rebuilt by the code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from jobqueue.queue.cmq_signing import SignatureMethod, sign, signed_params, string_to_sign
from tencent_plumbing.credentials import TencentCredentials

HOST = "cmq-gz.public.tencenttdmq.com"
CREDS = TencentCredentials("AKIDexample", "example-secret-key")


def _expected(plain: str, key: str = "example-secret-key", digest=hashlib.sha256) -> str:
    return base64.b64encode(hmac.new(key.encode(), plain.encode(), digest).digest()).decode()


def test_send_message_vector_hmac_sha256():
    form = signed_params(
        "SendMessage",
        {"queueName": "relay_work", "msgBody": '{"task_id": "t 1&2=3"}', "delaySeconds": 0},
        host=HOST,
        credentials=CREDS,
        timestamp=1700000000,
        nonce=12345,
    )

    # sorted by name (upper case first, ASCII), values raw: the space, & and = of the body stay as they are
    plain = (
        "POSTcmq-gz.public.tencenttdmq.com/v2/index.php?Action=SendMessage&Nonce=12345&SecretId=AKIDexample"
        '&SignatureMethod=HmacSHA256&Timestamp=1700000000&delaySeconds=0&msgBody={"task_id": "t 1&2=3"}'
        "&queueName=relay_work"
    )
    assert form["Signature"] == _expected(plain)
    assert form == {
        "Action": "SendMessage",
        "SecretId": "AKIDexample",
        "Nonce": "12345",
        "Timestamp": "1700000000",
        "SignatureMethod": "HmacSHA256",
        "queueName": "relay_work",
        "msgBody": '{"task_id": "t 1&2=3"}',
        "delaySeconds": "0",
        "Signature": _expected(plain),
    }


def test_hmac_sha1_with_token_and_a_batch():
    creds = TencentCredentials("AKIDexample", "example-secret-key", token="session-token-xyz")
    form = signed_params(
        "BatchSendMessage",
        {"queueName": "q", "msgBody.1": "a", "msgBody.2": "b", "delaySeconds": 5},
        host="127.0.0.1:8080",
        credentials=creds,
        method=SignatureMethod.HMAC_SHA1,
        timestamp=1700000001,
        nonce=7,
    )

    plain = (
        "POST127.0.0.1:8080/v2/index.php?Action=BatchSendMessage&Nonce=7&SecretId=AKIDexample"
        "&SignatureMethod=HmacSHA1&Timestamp=1700000001&Token=session-token-xyz&delaySeconds=5"
        "&msgBody.1=a&msgBody.2=b&queueName=q"
    )
    assert form["Token"] == "session-token-xyz"
    assert form["Signature"] == _expected(plain, digest=hashlib.sha1)


def test_underscores_in_names_are_signed_as_dots_and_signature_is_left_out():
    params = {"msgBody_1": "x", "Signature": "old", "Action": "A"}

    assert string_to_sign("h", params) == "POSTh/v2/index.php?Action=A&msgBody.1=x"


def test_non_ascii_values_are_signed_as_utf8_text():
    plain = string_to_sign("h", {"msgBody": "世界"})

    assert plain == "POSTh/v2/index.php?msgBody=世界"
    assert sign(plain, "k") == _expected("POSTh/v2/index.php?msgBody=世界", key="k")


def test_nonce_is_random_and_timestamp_is_now():
    first = signed_params("A", {}, host=HOST, credentials=CREDS)
    second = signed_params("A", {}, host=HOST, credentials=CREDS)

    assert first["Nonce"] != second["Nonce"]
    assert all(int(f["Nonce"]) > 0 for f in (first, second))
    assert abs(int(first["Timestamp"]) - time.time()) < 5


def test_unknown_signature_method_is_refused():
    with pytest.raises(ValueError):
        sign("x", "k", "HmacMD5")  # type: ignore[arg-type]
