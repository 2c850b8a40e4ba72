"""The webhook entry: a checked URL, a ledger note, at most one POLL hint per hop, a rate limit.

Real SQLite ledger and queue; requests go through the SCF handler's event shape and through the self-hosted
WSGI route on loopback.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from jobqueue.ledger.sqlite import SqliteLedger
from jobqueue.message import InputObject, JobMessage, Stage, parse
from jobqueue.queue.sqlite import SqliteQueue
from relay_core.webhooks import mac_ok, parse_path, task_mac, webhook_url
from scf_relay.webhook_server import WebhookServer
from webhook_entry import index
from webhook_entry.gate import TokenBucket, WebhookGate

SECRET = "s3cret"
NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(tmp_path):
    with SqliteLedger(tmp_path / "ledger.db") as opened:
        yield opened


@pytest.fixture
def queue(tmp_path, clock):
    opened = SqliteQueue(tmp_path / "queue.db", clock=clock)
    yield opened
    opened.close()


def gate(ledger, queue, clock, rate=100.0, burst=100.0):
    return WebhookGate(ledger, queue, SECRET, bucket=TokenBucket(rate, burst, clock=clock), clock=clock)


def submitted(ledger, task="t1", vendor="1838000000000000001"):
    first_poll = JobMessage(
        task_id=task,
        user_id="u1",
        pipeline="promo_poster",
        stage=Stage.POLL,
        input=InputObject(bucket="relay-1250000000", key=f"input/u1/{task}/a.jpg", size=3),
        vendor_task_id=vendor,
        seq=1,
        created_at=NOW,
        deadline_at=NOW + 900,
    )
    assert ledger.begin_hop(task, 0, 30, NOW, "u1").state.value == "run"
    ledger.claim_submit(task, "tok", 30, NOW + 900, NOW, user_id="u1")
    ledger.mark_sending(task, "tok", NOW)
    assert ledger.record_submission(task, "tok", vendor, NOW, poll_message=first_poll.dumps())
    ledger.advance(task, 0, NOW)
    return first_poll


def path(task="t1", mac=None):
    return f"/release/runninghub/{task}/{mac or task_mac(SECRET, task)}"


def body(vendor="1838000000000000001", event="TASK_END"):
    return json.dumps({"event": event, "taskId": vendor, "eventData": json.dumps({"code": 0})}).encode()


def queued(queue):
    got = queue.receive(10, 30)
    return [parse(r.body) for r in got]


def test_the_url_names_the_task_and_cannot_be_forged_for_another():
    url = webhook_url("https://hooks.example.com/release/", SECRET, "t1")
    assert url == f"https://hooks.example.com/release/runninghub/t1/{task_mac(SECRET, 't1')}"
    task, mac = parse_path(url.split("example.com", 1)[1])
    assert (task, len(mac)) == ("t1", 32) and mac_ok(SECRET, task, mac)
    assert not mac_ok(SECRET, "t2", mac) and not mac_ok("other", "t1", mac) and not mac_ok("", "t1", mac)
    assert parse_path("/runninghub/t1/xyz") is None and parse_path("/elsewhere/t1/" + mac) is None


def test_a_good_webhook_sends_one_poll_hint_at_the_next_seq(ledger, queue, clock):
    first = submitted(ledger)
    answer = gate(ledger, queue, clock).handle("POST", path(), body())
    assert (answer.status, answer.body["action"]) == (200, "hint")
    [hint] = queued(queue)
    assert hint == first.replace(seq=1)  # the first POLL hop, at the seq the task is waiting on
    assert ledger.get("t1").webhook_at == NOW


def test_duplicate_webhooks_send_nothing_more(ledger, queue, clock):
    submitted(ledger)
    entry = gate(ledger, queue, clock)
    answers = [entry.handle("POST", path(), body()).body["action"] for _ in range(3)]
    assert answers == ["hint", "duplicate", "duplicate"]
    assert len(queued(queue)) == 1
    ledger.mark_vendor_done("t1", "1838000000000000001", NOW + 1)  # the poll saw it finished: later ones dropped
    assert entry.handle("POST", path(), body()).body["action"] == "finished"
    assert queued(queue) == []


@pytest.mark.parametrize(
    "where",
    [
        path(mac="0" * 32),  # forged mac
        path(task="t2", mac=task_mac(SECRET, "t1")),  # t1's mac on another task
        "/runninghub/t1",
        "/runninghub/..%2Ft1/" + task_mac(SECRET, "t1"),
    ],
)
def test_a_url_we_did_not_make_is_404_and_touches_nothing(ledger, queue, clock, where):
    submitted(ledger)
    answer = gate(ledger, queue, clock).handle("POST", where, body())
    assert answer.status == 404
    assert queued(queue) == [] and ledger.get("t1").webhook_at is None


def test_unknown_tasks_and_bad_bodies_send_nothing(ledger, queue, clock):
    entry = gate(ledger, queue, clock)
    assert entry.handle("POST", path(task="nope"), body()).body["action"] == "unknown"
    submitted(ledger)
    submitted(ledger, task="t2", vendor="1838000000000000002")
    assert entry.handle("POST", path(), body(vendor="1838000000000000002")).body["action"] == "foreign_vendor_task"
    assert entry.handle("POST", path(), body(event="TASK_START")).status == 400
    assert entry.handle("POST", path(), b"not json").status == 400
    assert entry.handle("GET", path(), b"").status == 405
    assert queued(queue) == []


def test_a_flood_beyond_the_rate_limit_is_refused_before_any_work(ledger, queue, clock):
    submitted(ledger)
    entry = gate(ledger, queue, clock, rate=5, burst=10)
    statuses = [entry.handle("POST", path(mac="0" * 32), body()).status for _ in range(50)]
    assert statuses.count(404) == 10 and statuses.count(429) == 40
    assert entry.handle("POST", path(), body()).status == 429  # the real one waits for a token too
    clock.now += 1.0  # five tokens a second
    assert entry.handle("POST", path(), body()).body["action"] == "hint"


def test_the_scf_handler_answers_the_gateway(tmp_path, monkeypatch, ledger, queue, clock):
    submitted(ledger)
    monkeypatch.setenv("RELAY_LEDGER", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("RELAY_QUEUE", f"sqlite:///{tmp_path / 'queue.db'}")
    monkeypatch.setenv("RELAY_WEBHOOK_SECRET", SECRET)
    index.reset(clock)
    try:
        encoded = base64.b64encode(body()).decode()
        event = {"httpMethod": "POST", "path": path(), "body": encoded, "isBase64Encoded": True}
        answer = index.main_handler(event, {"request_id": "r1"})
        assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"ok": True, "action": "hint"}
        forged = index.main_handler({**event, "path": path(mac="f" * 32)}, {})
        assert forged["statusCode"] == 404
        assert index.main_handler({**event, "body": "%%%"}, {})["statusCode"] == 400
    finally:
        index.reset()
    assert len(queued(queue)) == 1


def test_the_self_hosted_route_serves_the_same_gate(ledger, queue, clock):
    submitted(ledger)
    with WebhookServer(gate(ledger, queue, clock)) as server:
        good = httpx.post(server.base_url + path(), content=body())
        forged = httpx.post(server.base_url + path(mac="a" * 32), content=body())
    assert (good.status_code, good.json()["action"]) == (200, "hint") and forged.status_code == 404
    assert len(queued(queue)) == 1


def test_a_webhook_for_a_second_job_of_the_task_asks_about_that_job(ledger, queue, clock):
    first = submitted(ledger)
    entry = gate(ledger, queue, clock)
    assert entry.handle("POST", path(), body(vendor="1838000000000000009")).body["action"] == "other_job"
    assert ledger.get("t1").webhook_vendor_ids == ("1838000000000000009",)
    [hint] = queued(queue)  # the poll asks the vendor about that job: if it finished first, it is used
    assert hint == first.replace(seq=1, vendor_task_id="1838000000000000009")


def test_a_webhook_resolves_an_ambiguous_submit_and_hints_a_poll_of_its_job(ledger, queue, clock):
    first = submitted(ledger)  # for its POLL hop's shape; then a second task whose submit turned ambiguous
    template = first.replace(task_id="t3", vendor_task_id=None).dumps()
    ledger.claim_submit("t3", "tok", 30, NOW + 900, NOW, user_id="u1")
    ledger.mark_sending("t3", "tok", NOW, poll_message=template)
    ledger.mark_ambiguous("t3", "tok", NOW)
    ledger.advance("t3", 0, NOW)
    answer = gate(ledger, queue, clock).handle("POST", path(task="t3"), body(vendor="1838000000000000003"))
    assert (answer.status, answer.body["action"]) == (200, "adopted")
    [hint] = queued(queue)
    assert (hint.task_id, hint.seq, hint.vendor_task_id) == ("t3", 1, "1838000000000000003")
    assert ledger.get("t3").vendor_task_id == "1838000000000000003"
