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


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"taskId":"1"}'
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k3y", 1700000000, body) == f"sha256={expected}"


def test_verifier_accepts_good_and_rejects_tampered_stale_and_wrong_key():
    body = report_body("t1", DONE)
    headers = {"X-Relay-Timestamp": "1700000000", "X-Relay-Signature": sign("k3y", 1700000000, body)}
    assert verify_signature("k3y", headers, body, now=1700000100)
    assert not verify_signature("k3y", headers, body + b" ", now=1700000100)
    assert not verify_signature("other", headers, body, now=1700000100)
    assert not verify_signature("k3y", headers, body, now=1700000000 + 301)
    assert not verify_signature("k3y", {**headers, "X-Relay-Timestamp": "soon"}, body, now=1700000000)


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
