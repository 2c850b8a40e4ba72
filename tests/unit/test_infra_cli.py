"""``scf-relay infra create-queues`` through typer's CliRunner, against the local API 3.0 server (real tdmq SDK)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scf_relay.cli.app import app
from tests.servers.api3_server import LocalApi3Server

SECRET_ID, SECRET_KEY = "AKIDinfracli", "infra-cli-secret-key"
runner = CliRunner()


@pytest.fixture
def server(relay_home, monkeypatch):
    for name in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN", "DEPLOY_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    with LocalApi3Server(SECRET_ID, SECRET_KEY) as srv:
        yield srv


def create(server, *args: str):
    base = ["infra", "create-queues", "--region", "ap-guangzhou", "--endpoint", server.endpoint]
    return runner.invoke(app, [*base, *args])


def test_creates_both_queues_then_reports_them_unchanged(server):
    first = create(server, "--queue", "relay_jobs", "--dlq", "relay_dead", "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["ok"] and data["region"] == "ap-guangzhou"
    assert data["queues"] == [
        {"queue": "relay_dead", "role": "dead-letter", "change": "created"},
        {"queue": "relay_jobs", "role": "work", "change": "created"},
    ]
    jobs, dead = server.cmq.queues["relay_jobs"], server.cmq.queues["relay_dead"]
    assert jobs.attributes["VisibilityTimeout"] == 120 and jobs.attributes["MsgRetentionSeconds"] == 43_200
    assert jobs.dead_letter == {"DeadLetterQueue": "relay_dead", "Policy": 0, "MaxReceiveCount": 5}
    assert dead.attributes["RewindSeconds"] == 1_296_000
    assert {c.region for c in server.calls} == {"ap-guangzhou"}

    second = create(server, "--queue", "relay_jobs", "--dlq", "relay_dead")
    assert second.exit_code == 0, second.output
    assert second.stdout.count("unchanged") == 2 and "created" not in second.stdout
    assert not server.calls_of("ModifyCmqQueueAttribute")


def test_names_and_limits_come_from_the_relay_settings(server, monkeypatch):
    monkeypatch.setenv("RELAY_QUEUE", "cmq://jobs_a?region=gz&dlq=dead_a&vpc=1")
    monkeypatch.setenv("RELAY_VISIBILITY_TIMEOUT_S", "300")
    monkeypatch.setenv("RELAY_MAX_RECEIVE_COUNT", "7")
    result = create(server, "--json")
    assert result.exit_code == 0, result.output
    assert [q["queue"] for q in json.loads(result.stdout)["queues"]] == ["dead_a", "jobs_a"]
    assert server.cmq.queues["jobs_a"].attributes["VisibilityTimeout"] == 300
    assert server.cmq.queues["jobs_a"].dead_letter["MaxReceiveCount"] == 7

    drifted = create(server, "--max-receive-count", "9", "--json")
    changes = {q["queue"]: q["change"] for q in json.loads(drifted.stdout)["queues"]}
    assert changes == {"dead_a": "unchanged", "jobs_a": "updated"}


def test_missing_credentials_is_one_line_naming_the_variables(server, monkeypatch):
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    result = create(server, "--queue", "relay_jobs", "--dlq", "relay_dead")
    assert result.exit_code == 2
    assert "TENCENTCLOUD_SECRETID" in result.output and "TENCENTCLOUD_SECRETKEY" in result.output
    assert server.calls == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "--queue and --dlq"),
        (["--queue", "relay_jobs", "--dlq", "relay_jobs"], "must differ"),
        (["--queue", "relay-jobs-dlq", "--dlq", "relay_dead"], "invalid"),
        (["--queue", "relay_jobs", "--dlq", "relay_dead", "--retention-s", "10"], "outside"),
    ],
)
def test_bad_options_fail_with_exit_2_before_any_change(server, args, expected):
    result = create(server, *args, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and expected in data["error"]
    assert not server.calls_of("CreateCmqQueue")


def test_a_refusing_service_exits_1(server):
    server.fail_next("tdmq", "DescribeCmqQueueDetail", code="InternalError")
    result = create(server, "--queue", "relay_jobs", "--dlq", "relay_dead", "--json")
    assert result.exit_code == 1
    assert "InternalError" in json.loads(result.stdout)["error"]
    assert SECRET_KEY not in result.output
