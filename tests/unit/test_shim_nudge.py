"""The shim's nudge: after enqueuing, one async SCF Invoke of the consumer through the real scf SDK over HTTP.

The shim runs end to end on the embedded SQLite queue; the nudge goes to the local API 3.0 server, which
verifies TC3 signatures made from the ``TENCENTCLOUD_*`` variables the SCF role would inject.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer_shim import index
from tests.servers.api3_server import LocalApi3Server

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cos_events"
REPO = Path(__file__).resolve().parents[2]
SECRET_ID, SECRET_KEY, TOKEN = "AKIDshimnudge", "shim-nudge-secret-key", "shim-nudge-session-token"


def event(name: str = "real_put", **object_fields: object) -> dict:
    loaded = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    loaded["Records"][0]["cos"]["cosObject"].update(object_fields)
    return loaded


@pytest.fixture
def server():
    with LocalApi3Server(SECRET_ID, SECRET_KEY, TOKEN) as srv:
        yield srv


@pytest.fixture
def shim(relay_home, server, monkeypatch):
    """The shim configured to nudge ``relay-consumer`` at the local server, with role-style credentials."""
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", TOKEN)
    monkeypatch.setenv("RELAY_NUDGE_FUNCTION", "relay-consumer")
    monkeypatch.setenv("RELAY_NUDGE_REGION", "ap-guangzhou")
    monkeypatch.setenv("RELAY_NUDGE_NAMESPACE", "relay")
    monkeypatch.setenv("RELAY_NUDGE_ENDPOINT", server.endpoint)
    index.reset()
    yield index
    index.reset()


def test_an_enqueued_upload_nudges_the_consumer_once_asynchronously(shim, server):
    summary = shim.main_handler(event(), {"request_id": "req-nudge"})
    assert len(summary["enqueued"]) == 1
    [invocation] = server.scf.invocations
    assert (invocation.function_name, invocation.namespace, invocation.invocation_type) == (
        "relay-consumer",
        "relay",
        "Event",
    )
    sent = json.loads(invocation.client_context)
    assert sent["Type"] == "Nudge" and sent["Enqueued"] == 1
    [call] = server.calls_of("Invoke")
    assert (call.service, call.region) == ("scf", "ap-guangzhou")


def test_nothing_enqueued_means_no_invoke(shim, server):
    summary = shim.main_handler(event(size=-1), {})  # a malformed record is refused
    assert summary["enqueued"] == [] and len(summary["skipped"]) == 1
    assert server.scf.invocations == [] and server.calls == []


def test_a_failing_nudge_still_returns_the_summary(shim, server, caplog):
    caplog.set_level(logging.WARNING, logger="relay")
    server.fail_next("scf", "Invoke", code="InternalError")
    first = shim.main_handler(event(), {})
    server.fail_next("scf", "Invoke", status=503)
    second = shim.main_handler(event("documented_sample"), {})
    server.stop()  # nobody listening at all
    third = shim.main_handler(event("multipart_upload"), {})
    assert [len(s["enqueued"]) for s in (first, second, third)] == [1, 1, 1]
    assert server.scf.invocations == []
    assert "nudge failed" in caplog.text and SECRET_KEY not in caplog.text and TOKEN not in caplog.text


def test_no_nudge_without_a_function_or_a_region(relay_home, server, monkeypatch, caplog):
    monkeypatch.setenv("RELAY_NUDGE_ENDPOINT", server.endpoint)
    index.reset()
    try:
        assert len(index.main_handler(event(), {})["enqueued"]) == 1  # RELAY_NUDGE_FUNCTION unset: off
        monkeypatch.setenv("RELAY_NUDGE_FUNCTION", "relay-consumer")
        index.reset()
        caplog.set_level(logging.WARNING, logger="relay")
        assert len(index.main_handler(event("documented_sample"), {})["enqueued"]) == 1
    finally:
        index.reset()
    assert server.calls == []
    assert "RELAY_NUDGE_REGION" in caplog.text


_PROBE = """
import json, sys
from producer_shim.index import main_handler
loaded_at_import = "tencentcloud" in {m.split(".")[0] for m in sys.modules}
summary = main_handler(json.load(open(sys.argv[1], encoding="utf-8")), {})
print(json.dumps({"at_import": loaded_at_import, "enqueued": len(summary["enqueued"])}))
"""


def test_the_sdk_is_loaded_only_when_nudging(tmp_path, server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "RUNNINGHUB_", "TENCENTCLOUD_"))}
    env.update(
        RELAY_HOME=str(tmp_path / "relay"),
        RELAY_NUDGE_FUNCTION="relay-consumer",
        RELAY_NUDGE_REGION="ap-guangzhou",
        RELAY_NUDGE_ENDPOINT=server.endpoint,
        TENCENTCLOUD_SECRETID=SECRET_ID,
        TENCENTCLOUD_SECRETKEY=SECRET_KEY,
        TENCENTCLOUD_SESSIONTOKEN=TOKEN,
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(FIXTURES / "real_put.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"at_import": False, "enqueued": 1}
    assert len(server.scf.invocations) == 1
