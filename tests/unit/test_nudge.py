"""nudge_consumer: an async SCF Invoke through the real scf SDK over HTTP; failures are swallowed."""

from __future__ import annotations

import json
import logging

import pytest

from tencent_plumbing.credentials import static_credentials
from tencent_plumbing.scf_invoke import nudge_consumer, nudge_event
from tests.servers.api3_server import LocalApi3Server

SECRET_ID, SECRET_KEY, TOKEN = "AKIDnudge", "nudge-secret-key-1", "nudge-session-token"


@pytest.fixture
def server():
    with LocalApi3Server(SECRET_ID, SECRET_KEY, TOKEN) as srv:
        yield srv


def nudge(server, **options) -> bool:
    options.setdefault("credentials", static_credentials(SECRET_ID, SECRET_KEY, TOKEN))
    return nudge_consumer("relay-consumer", region="ap-guangzhou", endpoint=server.endpoint, **options)


def test_nudge_invokes_the_consumer_asynchronously(server):
    assert nudge(server, namespace="relay", payload={"Queued": 3, "Type": "Timer"})
    [invocation] = server.scf.invocations
    assert (invocation.function_name, invocation.namespace, invocation.invocation_type) == (
        "relay-consumer",
        "relay",
        "Event",
    )
    event = json.loads(invocation.client_context)
    assert event["Type"] == "Nudge" and event["Queued"] == 3  # the payload cannot change the type
    assert event["Time"].endswith("Z")
    call = server.calls_of("Invoke")[0]
    assert (call.service, call.region) == ("scf", "ap-guangzhou")


def test_default_namespace_and_event():
    assert nudge_event(now_s=0) == {"Type": "Nudge", "Time": "1970-01-01T00:00:00Z"}


def test_failures_are_logged_and_swallowed(server, caplog):
    caplog.set_level(logging.WARNING, logger="relay.tencent_plumbing.scf_invoke")
    server.scf.known = {"other-function"}
    assert nudge(server) is False
    server.scf.known = None
    assert nudge(server, credentials=static_credentials(SECRET_ID, "wrong-nudge-key", TOKEN)) is False
    server.fail_next("scf", "Invoke", status=503)
    assert nudge(server) is False
    assert nudge(server, payload={"blob": "x" * 200_000}) is False  # over the 128 KB async event limit
    assert nudge(server, payload={"not_json": object()}) is False
    assert server.scf.invocations == []
    text = caplog.text
    assert "ResourceNotFound.Function" in text and "SignatureFailure" in text
    assert "wrong-nudge-key" not in text and TOKEN not in text
    endpoint = server.endpoint
    server.stop()
    assert (
        nudge_consumer(
            "relay-consumer",
            region="ap-guangzhou",
            endpoint=endpoint,
            credentials=static_credentials(SECRET_ID, SECRET_KEY, TOKEN),
        )
        is False
    )
