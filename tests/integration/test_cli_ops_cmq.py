"""The operator commands against CMQ (the signature-checking local server): what CMQ lets them do, and that
they say what a look costs (a look at a dead letter receives it)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jobqueue import open_ledger, open_queue
from jobqueue.message import parse
from scf_relay.cli.app import app
from tests.integration.test_cli_ops import message
from tests.servers.cmq_server import LocalCmqServer

SECRET_ID, SECRET_KEY, TOKEN = "AKIDlocalcliops", "local-cli-ops-secret-key", "local-cli-ops-token"
runner = CliRunner()


@pytest.fixture
def cmq(relay_home, monkeypatch):
    """A local CMQ server with a work queue and its dead-letter queue; RELAY_QUEUE and credentials point at it."""
    with LocalCmqServer(SECRET_ID, SECRET_KEY, TOKEN) as server:
        server.create_queue("relay_dead", visibility_timeout_s=1)
        server.create_queue("relay_jobs", visibility_timeout_s=30, dlq="relay_dead", max_receive_count=5)
        url = f"cmq://relay_jobs?region=gz&dlq=relay_dead&endpoint={server.endpoint}&dlq_search_s=2"
        for name, value in {
            "RELAY_QUEUE": url,
            "RELAY_MAX_RECEIVE_COUNT": "5",
            "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
        }.items():
            monkeypatch.setenv(name, value)
        from relay_core.settings import load

        with open_queue(url) as queue, open_ledger(load().ledger_url()) as ledger:
            yield server, queue, ledger


def bury(queue, body: str, reason: str) -> None:
    queue.send(body)
    [got] = [r for r in queue.receive(16, 30) if r.body == body]
    assert queue.dead_letter(got, reason)


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def run_json(*args: str, code: int = 0) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_dlq_list_show_redrive_and_fail_on_cmq_say_what_a_look_costs(cmq):
    server, queue, ledger = cmq
    bury(queue, message("t-redo").dumps(), "poll: runninghub 802")
    bury(queue, message("t-give-up", user="u9").dumps(), "poll: runninghub 802")

    listed = run_json("dlq", "list")
    assert sorted(d["task_id"] for d in listed["letters"]) == ["t-give-up", "t-redo"]
    assert "receives each one" in listed["look_cost"] and listed["queue"].startswith("cmq://relay_jobs")
    ids = {d["task_id"]: d["message_id"] for d in listed["letters"]}
    server.clock.advance(2)  # the look hid them for the DLQ's visibility timeout
    human = run("dlq", "list", "--wide")
    assert human.exit_code == 0 and "a look at the dead letters receives each one" in " ".join(human.stdout.split())
    server.clock.advance(2)

    shown = run_json("dlq", "show", ids["t-redo"][:10])
    assert shown["look_cost"] and ids["t-redo"] in json.dumps(shown)
    server.clock.advance(2)

    moved = run_json("dlq", "redrive", ids["t-redo"], "--yes")
    assert moved["look_cost"] and moved["moved"] == [ids["t-redo"]] and moved["missing"] == []
    [again] = [m for m in server.messages("relay_jobs")]
    assert parse(again["msgBody"]).task_id == "t-redo" and again["msgId"] != ids["t-redo"]  # a new message
    server.clock.advance(2)

    failed = run_json("dlq", "fail", ids["t-give-up"], "--reason", "处理失败", "--yes")
    assert failed["look_cost"] and ledger.get("t-give-up").outcome.error_reason == "处理失败"
    reports = [parse(m["msgBody"]) for m in server.messages("relay_jobs")]
    assert [(r.task_id, r.stage.value) for r in reports if r.task_id == "t-give-up"] == [("t-give-up", "report")]
    server.clock.advance(2)
    assert run_json("dlq", "list")["count"] == 0


def test_queue_peek_on_cmq_asks_first_and_stats_say_what_cmq_cannot_tell(cmq):
    server, queue, _ = cmq
    queue.send(message("t-next").dumps())
    refused = run_json("queue", "peek", code=1)
    assert "a look is a receive" in refused["error"] and "pass --yes" in refused["error"]
    assert [m["visible"] for m in server.messages("relay_jobs")] == [True]  # nothing received
    peeked = run_json("queue", "peek", "--yes")
    assert peeked["side_effects"] and [m["task_id"] for m in peeked["messages"]] == ["t-next"]
    assert [m["visible"] for m in server.messages("relay_jobs")] == [False]  # the cost: hidden, counted
    stats = run_json("queue", "stats")
    assert stats["ready"] is None and stats["oldest_waiting_age"] == "unknown"
    assert any("api_region" in note for note in stats["notes"])
