"""CMQ control plane through the real tdmq SDK over HTTP against the local API 3.0 server."""

from __future__ import annotations

import pytest

from jobqueue.errors import BackendUnavailable, QueueConfigError, QueueError
from jobqueue.queue.base import QueueStats, StatsSource
from jobqueue.queue.cmq_admin import ControlPlaneStats, QueueChange, ensure_queues, queue_stats, rewind_queue
from relay_core.errors import Transient
from tencent_plumbing.api3 import ApiTarget
from tencent_plumbing.credentials import static_credentials
from tests.servers.api3_server import ApiError, LocalApi3Server

SECRET_ID, SECRET_KEY = "AKIDcmqadmin", "cmq-admin-secret-key"
SETTINGS = {
    "visibility_timeout_s": 120,
    "retention_s": 43_200,
    "max_receive_count": 5,
    "dlq_rewind_s": 604_800,
}


@pytest.fixture
def server():
    with LocalApi3Server(SECRET_ID, SECRET_KEY) as srv:
        yield srv


@pytest.fixture
def target(server):
    return ApiTarget("ap-guangzhou", static_credentials(SECRET_ID, SECRET_KEY), server.endpoint, timeout_s=5)


def test_ensure_creates_then_is_idempotent(server, target):
    first = ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    assert first == {"relay_dead": QueueChange.CREATED, "relay_jobs": QueueChange.CREATED}
    assert list(first) == ["relay_dead", "relay_jobs"]  # the DLQ exists before the queue names it
    dead = server.cmq.queues["relay_dead"]
    assert (dead.attributes["RewindSeconds"], dead.attributes["MsgRetentionSeconds"]) == (604_800, 43_200)
    assert dead.attributes["VisibilityTimeout"] == 5 and dead.dead_letter is None
    jobs = server.cmq.queues["relay_jobs"]
    assert jobs.attributes["VisibilityTimeout"] == 120
    assert jobs.dead_letter == {"DeadLetterQueue": "relay_dead", "Policy": 0, "MaxReceiveCount": 5}

    creates = len(server.calls_of("CreateCmqQueue"))
    second = ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    assert second == {"relay_dead": QueueChange.UNCHANGED, "relay_jobs": QueueChange.UNCHANGED}
    assert len(server.calls_of("CreateCmqQueue")) == creates and not server.calls_of("ModifyCmqQueueAttribute")


def test_ensure_updates_drifted_attributes(server, target):
    ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    changed = ensure_queues(target, "relay_jobs", "relay_dead", **{**SETTINGS, "max_receive_count": 8})
    assert changed == {"relay_dead": QueueChange.UNCHANGED, "relay_jobs": QueueChange.UPDATED}
    assert server.cmq.queues["relay_jobs"].dead_letter["MaxReceiveCount"] == 8
    server.cmq.queues["relay_dead"].attributes["RewindSeconds"] = 0  # someone switched rewind off by hand
    changed = ensure_queues(target, "relay_jobs", "relay_dead", **{**SETTINGS, "max_receive_count": 8})
    assert changed["relay_dead"] is QueueChange.UPDATED
    assert server.cmq.queues["relay_dead"].attributes["RewindSeconds"] == 604_800


def test_dead_letter_policy_naming_the_dlq_by_id_counts_as_unchanged(server, target):
    ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    policy = server.cmq.queues["relay_jobs"].dead_letter
    policy["DeadLetterQueue"] = server.cmq.queues["relay_dead"].queue_id
    assert ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)["relay_jobs"] is QueueChange.UNCHANGED


def test_queue_created_meanwhile_is_aligned(server, target):
    real_describe = server.cmq.describe
    seen: list[str] = []

    def describe_then_race(params):  # the queue appears between our describe and our create
        if params["QueueName"] == "relay_jobs" and not seen:
            seen.append("raced")
            server.cmq.create({"QueueName": "relay_jobs", "VisibilityTimeout": 30})
            raise ApiError("ResourceNotFound", "not yet")
        return real_describe(params)

    server.handle("tdmq", "DescribeCmqQueueDetail", describe_then_race)
    result = ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    assert result["relay_jobs"] is QueueChange.UPDATED
    assert server.cmq.queues["relay_jobs"].attributes["VisibilityTimeout"] == 120


@pytest.mark.parametrize(
    ("queue", "dlq", "overrides"),
    [
        ("relay-jobs-dlq", "relay_dead", {}),
        ("relay_jobs", "relay_dead-retry", {}),
        ("1jobs", "relay_dead", {}),
        ("x" * 65, "relay_dead", {}),
        ("relay_jobs", "RELAY_JOBS", {}),
        ("relay_jobs", "relay_dead", {"retention_s": 43_201}),
        ("relay_jobs", "relay_dead", {"visibility_timeout_s": 0}),
        ("relay_jobs", "relay_dead", {"max_receive_count": 1001}),
        ("relay_jobs", "relay_dead", {"dlq_rewind_s": 1_296_001}),
    ],
)
def test_invalid_names_and_attributes_are_refused_before_any_call(server, target, queue, dlq, overrides):
    with pytest.raises(QueueConfigError):
        ensure_queues(target, queue, dlq, **{**SETTINGS, **overrides})
    assert server.calls == []


def test_queue_stats(server, target):
    ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    server.cmq.set_counts("relay_jobs", active=7, inactive=2, delayed=4)
    server.cmq.set_counts("relay_dead", active=1, inactive=1)
    assert queue_stats(target, "relay_jobs", "relay_dead") == QueueStats(ready=7, delayed=4, in_flight=2, dead=2)
    assert queue_stats(target, "relay_jobs").dead == 0
    with pytest.raises(QueueConfigError, match="does not exist"):
        queue_stats(target, "relay_missing")


def test_rewind(server, target):
    ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    rewind_queue(target, "relay_dead", 1_700_000_000)
    assert server.cmq.queues["relay_dead"].rewound_to == [1_700_000_000]
    with pytest.raises(QueueConfigError, match="OperationDenied"):
        rewind_queue(target, "relay_jobs", 1_700_000_000)  # no rewind on the work queue


def test_errors_are_translated(server, target):
    server.fail_next("tdmq", "DescribeCmqQueueDetail", code="InternalError")
    with pytest.raises(QueueError) as caught:
        queue_stats(target, "relay_jobs")
    assert isinstance(caught.value, Transient) and not isinstance(caught.value, QueueConfigError)
    server.fail_next("tdmq", "DescribeCmqQueueDetail", code="AuthFailure.UnauthorizedOperation")
    with pytest.raises(QueueConfigError):
        queue_stats(target, "relay_jobs")
    wrong = ApiTarget("ap-guangzhou", static_credentials(SECRET_ID, "wrong-secret-key"), server.endpoint)
    with pytest.raises(QueueConfigError, match="SignatureFailure") as caught:
        queue_stats(wrong, "relay_jobs")
    assert "wrong-secret-key" not in str(caught.value)
    server.stop()
    with pytest.raises(BackendUnavailable):
        queue_stats(target, "relay_jobs")


def test_a_cmq_url_with_api_region_reads_statistics_from_the_control_plane(server, monkeypatch):
    from jobqueue import open_queue, open_queue_admin

    target = ApiTarget("ap-guangzhou", static_credentials(SECRET_ID, SECRET_KEY), server.endpoint, timeout_s=5)
    ensure_queues(target, "relay_jobs", "relay_dead", **SETTINGS)
    server.cmq.set_counts("relay_jobs", active=3, inactive=1, delayed=2)
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    url = f"cmq://relay_jobs?region=gz&dlq=relay_dead&api_region=ap-guangzhou&api_endpoint={server.endpoint}"
    with open_queue_admin(url) as admin:
        source = admin.stats_source()
        assert isinstance(source, ControlPlaneStats)
        assert source.stats() == QueueStats(ready=3, delayed=2, in_flight=1, dead=0)
    assert not isinstance(open_queue(url), StatsSource), "statistics are the operator plane's"
    assert open_queue_admin("cmq://relay_jobs?region=gz&dlq=relay_dead").stats_source() is None
    for bad in (open_queue, open_queue_admin):
        with pytest.raises(QueueConfigError, match="long form"):
            bad("cmq://relay_jobs?region=gz&dlq=relay_dead&api_region=gz")
