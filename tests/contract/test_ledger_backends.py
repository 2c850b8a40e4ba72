"""What only one Ledger backend has: SQLite's ``prune``, URL forms and query plans; Redis's TTLs, indexes,
``prune`` and key layout. The contract every backend shares is ``test_ledger_contract.py``."""

from __future__ import annotations

import contextlib
import sqlite3
import time

import pytest

from jobqueue.errors import QueueConfigError
from relay_core.domain import Outcome, Status

NOW = 1_700_000_000.0
LEASE_S = 30.0
DEADLINE = NOW + 3600
DONE = Outcome(Status.DONE, result_keys=("output/u1/t1/frame_01.jpg",), vendor_task_id="v-1")


def _claim(ledger, token, now=NOW, task="t1", deadline_at=DEADLINE):
    return ledger.claim_submit(task, token, LEASE_S, deadline_at, now)


# -- SQLite only ------------------------------------------------------------------------------------------
def test_sqlite_prune_drops_records_older_than_retention(tmp_path):
    from jobqueue.ledger.sqlite import SqliteLedger

    with SqliteLedger.from_url(f"sqlite:///{tmp_path / 'l.db'}?retention_s=100") as ledger:
        ledger.advance("old", 1, NOW)
        _claim(ledger, "a", task="old-open")
        ledger.record_outcome("old-unreported", DONE, NOW)
        ledger.record_outcome("young", DONE, NOW + 60)
        ledger.advance("old", 2, NOW + 60)  # a later write does not make a record younger
        assert ledger.prune(NOW + 100) == 0
        assert ledger.prune(NOW + 101) == 3
        assert ledger.prune(NOW + 101) == 0
        assert ledger.get("old") is None and ledger.get("old-open") is None
        assert ledger.get("young").outcome == DONE
        assert ledger.open_tasks(DEADLINE + 1) == []
        assert [t.task_id for t in ledger.unreported(NOW + 61)] == ["young"]


def test_sqlite_url_forms_create_parent_folders(tmp_path, monkeypatch):
    from jobqueue.ledger.sqlite import SqliteLedger

    monkeypatch.chdir(tmp_path)
    with SqliteLedger.from_url("sqlite:///rel/dir/ledger.db") as ledger:
        ledger.advance("t1", 1, NOW)
    assert (tmp_path / "rel" / "dir" / "ledger.db").is_file()
    with SqliteLedger.from_url(f"sqlite:///{tmp_path / 'abs' / 'ledger.db'}?retention_s=60") as ledger:
        assert ledger.retention_s == 60
    assert (tmp_path / "abs" / "ledger.db").is_file()
    for bad in ("sqlite://", "sqlite://host/x.db", "sqlite:///x.db?retention_s=-1"):
        with pytest.raises(QueueConfigError):
            SqliteLedger.from_url(bad)


def test_sqlite_index_queries_search_their_index_never_the_table(tmp_path):
    from jobqueue.ledger.sqlite import OPEN_BY_DEADLINE, UNREPORTED, SqliteLedger

    with SqliteLedger(tmp_path / "l.db") as ledger:
        ledger.advance("t1", 0, NOW)
    queries = {
        OPEN_BY_DEADLINE: "task_records_open_by_deadline",
        UNREPORTED: "task_records_unreported",
        "DELETE FROM task_records WHERE created_at < ?": "task_records_by_created",  # prune
    }
    with contextlib.closing(sqlite3.connect(tmp_path / "l.db")) as conn:
        for sql, index in queries.items():
            params = (NOW, 5)[: sql.count("?")]
            plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            assert len(plan) == 1 and plan[0].startswith(f"SEARCH task_records USING INDEX {index} "), plan
            # the same query left to the planner picks the same index
            free = sql.replace(f" INDEXED BY {index}", "")
            assert any(index in row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {free}", params))


def test_sqlite_a_file_of_the_older_layout_still_opens(tmp_path):
    from jobqueue.ledger.sqlite import SqliteLedger

    with contextlib.closing(sqlite3.connect(tmp_path / "l.db")) as conn:
        conn.execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, seq INTEGER)")
    with SqliteLedger(tmp_path / "l.db") as ledger:
        assert ledger.advance("t1", 1, NOW) and ledger.get("t1").seq == 1


# -- Redis only --------------------------------------------------------------------------------
@pytest.fixture
def redis_ledger(redis_url):
    import redis

    from jobqueue.ledger.redis import RedisLedger, split_url

    client_url, prefix, _ = split_url(redis_url)
    client = redis.Redis.from_url(client_url, decode_responses=True)
    with RedisLedger.from_url(f"{redis_url}&retention_s=500") as ledger:
        yield ledger, client, prefix
    client.close()


@pytest.mark.redis
def test_redis_every_write_sets_the_retention_ttl(redis_ledger):
    ledger, client, prefix = redis_ledger
    key = f"{prefix}:task:t1"
    writes = [
        lambda: _claim(ledger, "a"),
        lambda: ledger.record_submission("t1", "a", "v", NOW + 1),
        lambda: ledger.advance("t1", 1, NOW + 2),
        lambda: ledger.record_outcome("t1", DONE, NOW + 3),
        lambda: ledger.mark_reported("t1", NOW + 4),
        lambda: ledger.begin_hop("t1", 2, 30, NOW + 5),
        lambda: ledger.release_hop("t1", 2, NOW + 6),
    ]
    for write in writes:
        client.expire(key, 5)
        write()
        assert 490 <= client.ttl(key) <= 500


@pytest.mark.redis
def test_redis_deadline_index_holds_only_open_tasks_and_drops_expired_ones(redis_ledger):
    ledger, client, prefix = redis_ledger
    for task in ("t1", "t2", "t3"):
        _claim(ledger, "a", task=task)
    ledger.advance("no-deadline", 1, NOW)
    ledger.record_outcome("t1", DONE, NOW + 1)
    assert client.zrange(f"{prefix}:deadlines", 0, -1) == ["t2", "t3"]

    _expire_now(client, f"{prefix}:task:t2")
    assert [t.task_id for t in ledger.open_tasks(DEADLINE + 1)] == ["t3"]
    assert client.zrange(f"{prefix}:deadlines", 0, -1) == ["t3"]


@pytest.mark.redis
def test_redis_unreported_index_holds_only_pending_reports_and_drops_expired_ones(redis_ledger):
    ledger, client, prefix = redis_ledger
    for n, task in enumerate(("t1", "t2", "t3")):
        ledger.record_outcome(task, DONE, NOW + n)
    _claim(ledger, "a", task="open")
    ledger.mark_reported("t1", NOW + 5)
    assert client.zrange(f"{prefix}:unreported", 0, -1, withscores=True) == [("t2", NOW + 1), ("t3", NOW + 2)]

    _expire_now(client, f"{prefix}:task:t2")
    assert [t.task_id for t in ledger.unreported(NOW + 10)] == ["t3"]
    assert client.zrange(f"{prefix}:unreported", 0, -1) == ["t3"]


@pytest.mark.redis
def test_redis_prune_drops_index_entries_whose_record_expired(redis_ledger):
    ledger, client, prefix = redis_ledger
    for task in ("t1", "t2", "t3"):
        _claim(ledger, "a", task=task)
        ledger.record_outcome(f"{task}-done", DONE, NOW)
    for key in ("t1", "t2-done"):
        _expire_now(client, f"{prefix}:task:{key}")
    assert ledger.prune(NOW) == 2
    assert ledger.prune(NOW) == 0
    assert client.zrange(f"{prefix}:deadlines", 0, -1) == ["t2", "t3"]
    assert client.zrange(f"{prefix}:unreported", 0, -1) == ["t1-done", "t3-done"]


@pytest.mark.redis
def test_redis_keys_follow_the_documented_layout_under_the_prefix(redis_ledger):
    ledger, client, prefix = redis_ledger
    _claim(ledger, "a")
    ledger.record_outcome("t2", DONE, NOW)
    assert sorted(client.scan_iter(match=f"{prefix}:*")) == [
        f"{prefix}:deadlines",
        f"{prefix}:task:t1",
        f"{prefix}:task:t2",
        f"{prefix}:unreported",
    ]
    assert client.get(f"{prefix}:task:t1") == "1|" + ledger.get("t1").to_json()


def _expire_now(client, key: str) -> None:
    client.pexpire(key, 1)
    until = time.monotonic() + 2
    while client.exists(key) and time.monotonic() < until:
        time.sleep(0.005)


def test_redis_url_options_are_validated():
    from jobqueue.ledger.redis import RedisLedger, split_url

    assert split_url("redis://127.0.0.1:6379/2?prefix=p&retention_s=9")[1:] == ("p", 9)
    assert split_url("redis://127.0.0.1:6379/2")[1:] == ("relay", 30 * 86400)
    assert split_url("redis://:pw@h:1/0?prefix=p&socket_timeout=3")[0] == "redis://:pw@h:1/0?socket_timeout=3"
    for query in ("prefix=", "retention_s=0", "retention_s=abc"):
        with pytest.raises(QueueConfigError):
            RedisLedger.from_url(f"redis://127.0.0.1:6379/15?{query}")
