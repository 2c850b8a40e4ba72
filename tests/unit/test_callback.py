"""The backend callback contract: exact JSON, HMAC headers, a copyable verifier with a replay window."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from consumer.callback import BackendReporter, Delivery, delivery_id, report_body, sign, verify_signature
from relay_core.domain import Outcome, Status
from scf_relay.demo.receiver import ReportReceiver

DONE = Outcome(
    Status.DONE,
    ("output/user123/task123/frame_01.jpg", "output/user123/task123/frame_02.jpg"),
    vendor_task_id="vendor-abc-789",
)
FAILED = Outcome(Status.FAILED, error_reason="生成超时", vendor_task_id="vendor-abc-789", detail="internal")


def test_bodies_are_exactly_the_backends_examples():
    assert json.loads(report_body("1234567890", DONE)) == {
        "taskId": "1234567890",
        "status": "done",
        "resultUrls": ["cos://output/user123/task123/frame_01.jpg", "cos://output/user123/task123/frame_02.jpg"],
        "vendorTaskId": "vendor-abc-789",
    }
    raw = report_body("1234567890", FAILED)
    assert json.loads(raw) == {
        "taskId": "1234567890",
        "status": "failed",
        "errorReason": "生成超时",
        "vendorTaskId": "vendor-abc-789",
    }
    assert "生成超时".encode() in raw  # UTF-8, not \\u escapes
    assert b"internal" not in raw  # operator detail never leaves


def test_signature_is_hmac_sha256_of_timestamp_dot_delivery_dot_body():
    body = b'{"taskId":"1"}'
    expected = hmac.new(b"k3y", b"1700000000.d-1." + body, hashlib.sha256).hexdigest()
    assert sign("k3y", 1700000000, "d-1", body) == f"sha256={expected}"
    with pytest.raises(ValueError, match="empty secret"):
        sign("", 1700000000, "d-1", body)


def _signed(body: bytes, delivery: str = "d-1", ts: int = 1700000000, secret: str = "k3y") -> dict[str, str]:
    return {
        "X-Relay-Timestamp": str(ts),
        "X-Relay-Delivery": delivery,
        "X-Relay-Signature": sign(secret, ts, delivery, body),
    }


def test_verifier_accepts_good_and_rejects_tampered_stale_and_wrong_key():
    body = report_body("t1", DONE)
    headers = _signed(body)
    assert verify_signature("k3y", headers, body, now=1700000100)
    assert not verify_signature("k3y", headers, body + b" ", now=1700000100)
    assert not verify_signature("other", headers, body, now=1700000100)
    assert not verify_signature("k3y", headers, body, now=1700000000 + 301)
    assert not verify_signature("k3y", {**headers, "X-Relay-Timestamp": "soon"}, body, now=1700000000)


def test_a_captured_report_cannot_be_replayed_under_a_fresh_delivery_id():
    body = report_body("t1", DONE)
    replayed = {**_signed(body), "X-Relay-Delivery": "a-fresh-id"}
    assert not verify_signature("k3y", replayed, body, now=1700000000)


def _hostile_variants(good: dict[str, str]) -> list[dict]:
    ts, delivery, sig = good["X-Relay-Timestamp"], good["X-Relay-Delivery"], good["X-Relay-Signature"]
    return [
        {},  # no headers at all
        {"X-Relay-Timestamp": ts, "X-Relay-Delivery": delivery},  # no signature
        {"X-Relay-Timestamp": ts, "X-Relay-Signature": sig},  # no delivery
        {"X-Relay-Timestamp": "١٧٠٠٠٠٠٠٠٠", "X-Relay-Delivery": delivery, "X-Relay-Signature": sig},  # int() takes it
        {"X-Relay-Timestamp": ts, "X-Relay-Delivery": delivery, "X-Relay-Signature": "sha256=é"},  # TypeError before
        {b"X-Relay-Timestamp": ts.encode(), b"X-Relay-Delivery": delivery.encode(), b"X-Relay-Signature": b"\xff"},
        {"X-Relay-Timestamp": "9" * 40, "X-Relay-Delivery": delivery, "X-Relay-Signature": sig},
        {"X-Relay-Timestamp": ts + "\n", "X-Relay-Delivery": delivery, "X-Relay-Signature": sig},
        {"X-Relay-Timestamp": ts, "X-Relay-Delivery": delivery + "\n", "X-Relay-Signature": sig},
        {"X-Relay-Timestamp": None, "X-Relay-Delivery": delivery, "X-Relay-Signature": sig},
    ]


@pytest.mark.parametrize("case", range(10))
def test_the_verifier_never_raises_on_hostile_headers(case):
    body = report_body("t1", DONE)
    headers = _hostile_variants(_signed(body))[case]
    assert verify_signature("k3y", headers, body, now=1700000000) is False


def test_the_verifier_reads_bytes_headers_as_a_server_may_pass_them():
    body = report_body("t1", DONE)
    as_bytes = {k.encode(): v.encode() for k, v in _signed(body).items()}
    assert verify_signature("k3y", as_bytes, body, now=1700000000)


def test_the_verifier_refuses_an_empty_secret_and_non_bytes_bodies():
    body = report_body("t1", DONE)
    assert not verify_signature("", _signed(body, secret="x"), body, now=1700000000)
    assert not verify_signature("k3y", _signed(body), body.decode(), now=1700000000)  # type: ignore[arg-type]


def test_a_reporter_with_an_empty_secret_cannot_be_built():
    with pytest.raises(ValueError, match="RELAY_CALLBACK_SECRET"):
        BackendReporter("http://backend", "")


def test_delivery_id_is_stable_per_task_and_status():
    assert delivery_id("t1", Status.DONE) == delivery_id("t1", Status.DONE)
    assert delivery_id("t1", Status.DONE) != delivery_id("t1", Status.FAILED) != delivery_id("t2", Status.FAILED)


def test_reporter_over_http_classifies_answers():
    with ReportReceiver("k3y") as rx:
        ok = BackendReporter(rx.base_url, "k3y").post("t1", DONE)
        assert ok.delivery is Delivery.DELIVERED
        [got] = rx.reports
        assert got.verified and got.delivery == delivery_id("t1", Status.DONE)
        assert BackendReporter(rx.base_url, "wrong").post("t1", DONE).delivery is Delivery.REJECTED
        rx.down_until = float("inf")
        assert BackendReporter(rx.base_url, "k3y").post("t1", DONE).delivery is Delivery.RETRY
    assert BackendReporter("http://127.0.0.1:9", "k3y").post("t1", DONE).delivery is Delivery.RETRY


@pytest.mark.parametrize(
    ("status", "delivery"), [(429, Delivery.RETRY), (503, Delivery.RETRY), (404, Delivery.REJECTED)]
)
def test_reporter_status_mapping(status, delivery):
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status)))
    assert BackendReporter("http://backend", "k3y", client=client).post("t1", FAILED).delivery is delivery
