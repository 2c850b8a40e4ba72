"""The CMQ queue adapter, both planes, over real HTTP against the local data-plane server
(tests/servers/cmq_server.py): ``CmqQueue`` (the work queue) and ``CmqDeadLetters`` (its dead-letter queue).

Time on the server is real time plus an offset the tests advance (``server.clock.advance``); waits that
must be real (long polls, a DLQ message hidden by a listing) stay around a second.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from jobqueue import open_queue, open_queue_admin
from jobqueue.errors import BackendUnavailable, QueueConfigError, QueueError
from jobqueue.queue.base import DeadLetterStore, QueueStats, Releasable, StatsSource, exceeded_reason
from jobqueue.queue.cmq import CmqQueue, default_endpoint
from jobqueue.queue.cmq_dead_letters import CmqDeadLetters
from jobqueue.queue.cmq_http import CmqApiError, CmqClient
from jobqueue.queue.cmq_signing import SignatureMethod, signed_params
from relay_core.errors import Transient
from tencent_plumbing.credentials import CredentialsMissing, TencentCredentials, static_credentials
from tests.contract.queues import ServerCounts, cmq_admin, cmq_queue
from tests.servers.cmq_server import LocalCmqServer

SECRET_ID = "AKIDcmqunittest"
SECRET_KEY = "cmq-unit-secret-key-0123456789"
TOKEN = "cmq-unit-session-token-abcdef"
MAX_RECEIVES = 3


@pytest.fixture
def server():
    with LocalCmqServer(SECRET_ID, SECRET_KEY, token=TOKEN) as srv:
        srv.create_queue("dead", visibility_timeout_s=1, max_msg_size_bytes=1_048_576)
        srv.create_queue(
            "work",
            visibility_timeout_s=1,
            dlq="dead",
            max_receive_count=MAX_RECEIVES,
            max_msg_size_bytes=1_048_576,
        )
        yield srv


@pytest.fixture
def make(server):
    opened: list[CmqQueue] = []

    def make(**options) -> CmqQueue:
        options.setdefault("credentials", static_credentials(SECRET_ID, SECRET_KEY, TOKEN))
        options.setdefault("max_receive_count", MAX_RECEIVES)
        opened.append(CmqQueue("work", "dead", endpoint=server.endpoint, **options))
        return opened[-1]

    yield make
    for queue in opened:
        queue.close()


@pytest.fixture
def queue(make):
    return make()


@pytest.fixture
def make_admin(server):
    opened: list[CmqDeadLetters] = []

    def make(**options) -> CmqDeadLetters:
        options.setdefault("credentials", static_credentials(SECRET_ID, SECRET_KEY, TOKEN))
        options.setdefault("max_receive_count", MAX_RECEIVES)
        opened.append(CmqDeadLetters("work", "dead", endpoint=server.endpoint, **options))
        return opened[-1]

    yield make
    for admin in opened:
        admin.close()


@pytest.fixture
def admin(make_admin):
    return make_admin()


def _one(queue: CmqQueue):
    (received,) = queue.receive(1)
    return received


def _dead(queue: CmqQueue, body: str) -> str:
    queue.send(body)
    received = _one(queue)
    assert queue.dead_letter(received, f"bad {body}")
    return received.message_id


# -- round trips and configuration -------------------------------------------------------------
def test_round_trip_send_receive_delete(queue, server):
    message_id = queue.send('{"hello": "世界"}')

    received = _one(queue)

    assert (received.message_id, received.body, received.receive_count) == (
        message_id,
        '{"hello": "世界"}',
        1,
    )
    assert abs(received.enqueued_at - time.time()) < 5
    assert queue.receive(5) == []  # hidden for the queue's visibility timeout
    assert queue.delete(received.receipt) is True
    assert queue.delete(received.receipt) is False  # stale receipt: the server answers an error code
    assert server.messages("work") == []


def test_open_queue_reads_role_credentials_from_the_environment_on_every_request(server, monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", TOKEN)
    url = f"cmq://work?region=gz&dlq=dead&endpoint={server.endpoint}"
    queue = open_queue(url, max_receive_count=2)
    assert queue.send("one") and queue.max_receive_count == 2
    admin = open_queue_admin(url, max_receive_count=2)
    assert isinstance(admin, CmqDeadLetters) and admin.stats_source() is None
    assert admin.dead_letters() == []
    admin.close()

    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "rotated-token-the-server-does-not-know")
    with pytest.raises(QueueConfigError):
        queue.send("two")
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    with pytest.raises(QueueConfigError, match="TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY"):
        queue.send("three")
    queue.close()


def test_url_endpoints_public_and_vpc():
    creds = static_credentials("id", "key")
    public = CmqQueue.from_url("cmq://work?region=gz&dlq=dead", credentials=creds)
    vpc = CmqQueue.from_url("cmq://work?region=sh&dlq=dead&vpc=1&dlq_search_s=3", credentials=creds)
    vpc_admin = CmqDeadLetters.from_url("cmq://work?region=sh&dlq=dead&vpc=1&dlq_search_s=3", credentials=creds)

    assert "cmq-gz.public.tencenttdmq.com" in repr(public)
    assert "sh.mqadapter.cmq.tencentyun.com" in repr(vpc) and "sh.mqadapter.cmq.tencentyun.com" in repr(vpc_admin)
    assert vpc_admin.dead_letter_search_s == 3
    assert default_endpoint("sh", vpc=True) == "http://sh.mqadapter.cmq.tencentyun.com"
    assert default_endpoint("gz") == "https://cmq-gz.public.tencenttdmq.com"


@pytest.mark.parametrize(
    "url",
    [
        "cmq://1work?region=gz&dlq=dead",
        f"cmq://{'w' * 65}?region=gz&dlq=dead",
        "cmq://work-dlq?region=gz&dlq=dead",
        "cmq://work?region=gz&dlq=work-retry",
        "cmq://wo.rk?region=gz&dlq=dead",
        "cmq://work?region=gz&dlq=work",
        "cmq://work?region=gz",
        "cmq://work?dlq=dead",
        "cmq://work?region=ap-guangzhou&dlq=dead",
        "cmq://work?region=gz&dlq=dead&visibility=30",
    ],
)
def test_bad_urls_and_names_fail_with_a_clear_error(url):
    with pytest.raises(QueueConfigError, match="RELAY_QUEUE"):
        CmqQueue.from_url(url, credentials=static_credentials("id", "key"))
    with pytest.raises(QueueConfigError, match="RELAY_QUEUE"):
        CmqDeadLetters.from_url(url, credentials=static_credentials("id", "key"))


def test_a_missing_queue_is_a_configuration_error(server):
    queue = CmqQueue(
        "nosuch",
        "dead",
        endpoint=server.endpoint,
        credentials=static_credentials(SECRET_ID, SECRET_KEY, TOKEN),
    )
    with pytest.raises(QueueConfigError, match="RELAY_QUEUE.*does not exist"):
        queue.send("x")


# -- delays and visibility ---------------------------------------------------------------------
def test_delay_hides_the_message_until_it_passes_rounded_up(queue, server):
    queue.send("later", delay_s=2)
    queue.send("soon", delay_s=0.2)  # whole seconds on the wire: never earlier than asked

    assert queue.receive(5) == []
    server.clock.advance(1.1)
    (soon,) = queue.receive(5)
    assert soon.body == "soon" and queue.delete(soon.receipt)
    server.clock.advance(1)
    assert [r.body for r in queue.receive(5)] == ["later"]


def test_max_delay_is_below_retention_and_configurable(make):
    queue = make()
    assert queue.max_delay_s == 43_200 - 60
    queue.send("far", delay_s=queue.max_delay_s)

    short = make(max_delay_s=600)
    with pytest.raises(ValueError):
        short.send("x", delay_s=601)


def test_visibility_is_the_queues_not_the_callers(queue, server):
    queue.send("work")
    first = queue.receive(1, visibility_timeout_s=300)[0]  # ignored: the queue's 1 s applies

    assert queue.receive(1) == []
    server.clock.advance(1.5)
    second = _one(queue)

    assert (second.message_id, second.receive_count) == (first.message_id, 2)
    assert second.receipt != first.receipt
    assert queue.delete(first.receipt) is False
    assert queue.delete(second.receipt) is True


def test_empty_queue_returns_nothing_and_long_poll_returns_a_message_sent_meanwhile(queue):
    assert queue.receive(16) == []

    sender = threading.Timer(0.2, lambda: queue.send("arrived"))
    sender.start()
    started = time.monotonic()
    got = queue.receive(1, wait_s=5)
    # the long poll may return before the server's answer to the send is read: the queue is closed only after it
    sender.join(timeout=5)

    assert [r.body for r in got] == ["arrived"]
    assert time.monotonic() - started < 1.5


# -- batches -----------------------------------------------------------------------------------
def test_batches_split_by_count(queue, server):
    bodies = [f"b{n}" for n in range(40)]

    ids = queue.send_batch(bodies, delay_s=0)

    assert server.calls == ["BatchSendMessage"] * 3  # 16 + 16 + 8
    assert len(set(ids)) == 40
    got = {}
    for _ in range(4):
        got.update({r.message_id: r.body for r in queue.receive(16)})
    assert got == dict(zip(ids, bodies, strict=True))


def test_batches_split_by_64_kb_and_a_large_body_goes_alone(queue, server):
    twenty_kb = ["x" * 20_000 + str(n) for n in range(5)]
    large = "L" * 70_000

    queue.send_batch([*twenty_kb, large, "tail"])

    # 3 x 20 KB fill one batch, the next 2 go together, the 70 KB body goes alone and the tail after it
    assert server.calls == ["BatchSendMessage", "BatchSendMessage", "SendMessage", "SendMessage"]
    assert sorted(m["msgBody"] for m in server.messages("work")) == sorted([*twenty_kb, large, "tail"])


def test_server_enforces_the_batch_and_size_limits(server):
    client = CmqClient(server.endpoint, credentials=static_credentials(SECRET_ID, SECRET_KEY, TOKEN))
    too_many = {"queueName": "work", **{f"msgBody.{n}": "x" for n in range(1, 18)}}
    too_big = {"queueName": "work", "msgBody.1": "x" * 40_000, "msgBody.2": "y" * 30_000}

    for params in (too_many, too_big):
        with pytest.raises(CmqApiError) as caught:
            client.call("BatchSendMessage", params)
        assert caught.value.code == 4000
    with pytest.raises(CmqApiError) as caught:
        client.call("SendMessage", {"queueName": "work", "msgBody": "z" * 1_048_577})
    assert caught.value.code == 4400
    assert server.messages("work") == []
    client.close()


def test_retention_drops_messages_never_deleted(server, queue):
    server.create_queue("short", retention_s=30)
    short = CmqQueue(
        "short",
        "dead",
        endpoint=server.endpoint,
        credentials=static_credentials(SECRET_ID, SECRET_KEY, TOKEN),
    )
    short.send("forgotten")

    server.clock.advance(31)

    assert short.receive(1) == [] and server.messages("short") == []
    short.close()


# -- dead letters ------------------------------------------------------------------------------
def test_server_policy_moves_a_message_received_too_often(queue, admin, server):
    message_id = queue.send("crashes")
    for count in range(1, MAX_RECEIVES + 1):
        assert _one(queue).receive_count == count
        server.clock.advance(1.5)

    assert queue.receive(1) == []

    (dead,) = admin.dead_letters()
    assert (dead.message_id, dead.body, dead.receive_count) == (message_id, "crashes", MAX_RECEIVES)
    assert dead.reason == exceeded_reason(MAX_RECEIVES, MAX_RECEIVES)


def test_adapter_dead_letters_past_its_own_max_receive_count(make, server):
    queue = make(max_receive_count=1)  # the server's policy allows 3
    message_id = queue.send("crashes")
    _one(queue)
    server.clock.advance(1.5)

    assert queue.receive(1) == []

    assert server.messages("work") == []
    envelope = json.loads(server.messages("dead")[0]["msgBody"])
    assert (envelope["message_id"], envelope["body"]) == (message_id, "crashes")
    assert envelope["reason"] == exceeded_reason(1, 1)


def test_explicit_dead_letter_sends_the_envelope_then_deletes(queue, server):
    queue.send("poison")
    received = _one(queue)
    server.calls.clear()

    assert queue.dead_letter(received, "body is not JSON") is True

    assert server.calls == ["SendMessage", "DeleteMessage"]
    (stored,) = server.messages("dead")
    envelope = json.loads(stored["msgBody"])
    assert set(envelope) == {"reason", "message_id", "receive_count", "dead_at", "body"}
    assert (envelope["reason"], envelope["message_id"], envelope["receive_count"], envelope["body"]) == (
        "body is not JSON",
        received.message_id,
        1,
        "poison",
    )
    assert abs(envelope["dead_at"] - time.time()) < 5
    assert server.messages("work") == []


def test_dead_letter_with_a_stale_receipt_takes_the_envelope_back(queue, server):
    queue.send("work")
    first = _one(queue)
    server.clock.advance(1.5)
    second = _one(queue)

    assert queue.dead_letter(first, "late") is False

    assert server.messages("dead") == []
    assert queue.delete(second.receipt) is True


def test_listing_dead_letters_receives_them(queue, admin, server):
    """CMQ can only look by receiving: a listing hides what it saw and counts a dequeue."""
    ids = [_dead(queue, "a"), _dead(queue, "b")]

    listed = admin.dead_letters()

    assert [(d.message_id, d.body, d.reason) for d in listed] == [
        (ids[0], "a", "bad a"),
        (ids[1], "b", "bad b"),
    ]
    assert [(m["dequeueCount"], m["visible"]) for m in server.messages("dead")] == [(1, False), (1, False)]
    assert admin.dead_letters() == []
    server.clock.advance(1.5)
    assert admin.dead_letters(limit=1) == listed[:1]
    assert [m["visible"] for m in server.messages("dead")] == [False, True]  # limit=1 asked for one only


def test_redrive_by_id_and_all(queue, admin, server):
    a, b, c = (_dead(queue, body) for body in "abc")

    assert admin.redrive([b, "no-such-id"]) == [b]  # looked at (and hid) every dead letter
    server.clock.advance(1.5)
    assert admin.redrive(limit=1) == [a]  # oldest first
    assert admin.redrive() == [c]

    got = queue.receive(16)
    assert sorted(r.body for r in got) == ["a", "b", "c"]
    assert {r.receive_count for r in got} == {1}  # fresh messages: new msgIds, counts reset
    assert server.messages("dead") == []


def test_redrive_finds_a_dead_letter_a_listing_just_hid(queue, make_admin, server):
    admin = make_admin(dead_letter_search_s=2.5)
    dead_id = _dead(queue, "a")
    admin.dead_letters()  # hides it for the DLQ's 1 s (real time)

    assert admin.redrive([dead_id]) == [dead_id]
    assert _one(queue).body == "a"


def test_remove_dead_and_dead_letter_by_id(queue, admin, server):
    gone, kept = _dead(queue, "a"), _dead(queue, "b")

    assert admin.remove_dead(gone) is True
    server.clock.advance(1.5)
    assert admin.remove_dead(gone) is False
    server.clock.advance(1.5)

    assert admin.dead_letter_by_id(gone) is None
    server.clock.advance(1.5)
    assert admin.dead_letter_by_id(kept).body == "b"
    assert [json.loads(m["msgBody"])["message_id"] for m in server.messages("dead")] == [kept]


def test_the_planes_declare_what_cmq_cannot_do(queue, make_admin, server):
    """No release and no statistics on the data plane; statistics only with a control plane given."""
    assert not isinstance(queue, Releasable | StatsSource | DeadLetterStore)
    assert make_admin().stats_source() is None
    counts = ServerCounts(server, "work", "dead")
    assert make_admin(stats=counts).stats_source() is counts


# -- errors and secrets ------------------------------------------------------------------------
def _failure(make, **options) -> QueueError:
    with pytest.raises(QueueError) as caught:
        make(**options).send("x")
    return caught.value


def test_wrong_key_wrong_id_and_missing_or_wrong_token_are_configuration_errors(make):
    failures = [
        _failure(make, credentials=static_credentials(SECRET_ID, "wrong-secret-key-987654", TOKEN)),
        _failure(make, credentials=static_credentials("AKIDnobody", SECRET_KEY, TOKEN)),
        _failure(make, credentials=static_credentials(SECRET_ID, SECRET_KEY)),
        _failure(make, credentials=static_credentials(SECRET_ID, SECRET_KEY, "wrong-token-000000")),
    ]

    for exc in failures:
        assert isinstance(exc, QueueConfigError) and not isinstance(exc, Transient)
        assert "TENCENTCLOUD_SECRETKEY" in str(exc) and "4100" in str(exc)
        for secret in (SECRET_KEY, TOKEN, "wrong-secret-key-987654", "wrong-token-000000"):
            assert secret not in str(exc) and secret not in repr(exc)


def test_missing_credentials_are_a_configuration_error(make):
    def no_credentials() -> TencentCredentials:
        raise CredentialsMissing("TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY are not set")

    assert isinstance(_failure(make, credentials=no_credentials), QueueConfigError)


def test_hmac_sha1_is_accepted(make):
    queue = make(sign_method=SignatureMethod.HMAC_SHA1)
    queue.send("sha1")
    assert _one(queue).body == "sha1"


def test_server_5xx_and_a_dead_server_are_backend_unavailable(queue, server):
    server.fail_next(1, status=503)
    with pytest.raises(BackendUnavailable) as caught:
        queue.send("x")
    assert isinstance(caught.value, Transient) and SECRET_KEY not in str(caught.value)
    assert queue.send("y")  # the next request goes through

    server.stop()
    with pytest.raises(BackendUnavailable):
        queue.receive(1)


def test_server_rejects_a_tampered_parameter_a_replayed_nonce_and_an_old_timestamp(server):
    host = server.endpoint.removeprefix("http://")
    creds = TencentCredentials(SECRET_ID, SECRET_KEY, TOKEN)
    url = f"{server.endpoint}/v2/index.php"

    def post(form):
        return httpx.post(url, data=form).json()

    form = signed_params("SendMessage", {"queueName": "work", "msgBody": "ok"}, host=host, credentials=creds)
    assert post({**form, "msgBody": "tampered"})["code"] == 4100
    assert post(form)["code"] == 0
    assert post(form)["code"] == 4100  # same nonce and timestamp again
    old = signed_params(
        "SendMessage",
        {"queueName": "work", "msgBody": "ok"},
        host=host,
        credentials=creds,
        timestamp=int(time.time()) - 3600,
    )
    answer = post(old)
    assert answer["code"] == 4100 and "Timestamp" in answer["message"]


def test_server_messages_never_leak_the_secret_through_the_adapter():
    def leaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 4000, "message": f"bad request signed with {SECRET_KEY}"})

    queue = CmqQueue(
        "work",
        "dead",
        endpoint="http://cmq.invalid",
        credentials=static_credentials(SECRET_ID, SECRET_KEY, TOKEN),
        client=httpx.Client(transport=httpx.MockTransport(leaky)),
    )
    with pytest.raises(QueueError) as caught:
        queue.send("x")
    assert "code 4000" in str(caught.value) and SECRET_KEY not in str(caught.value)


# -- the contract registry's factories ---------------------------------------------------------
def test_contract_factories_reopen_the_same_queues_and_stop_their_server(tmp_path):
    first = cmq_queue(tmp_path, None, 2, time.time)
    dead_id = _dead(first, "gone")
    first.send("kept")
    server = first.server
    first.close()
    assert not server.running

    again = cmq_queue(tmp_path, None, 2, time.time)
    admin = cmq_admin(tmp_path, None, 2, time.time)

    assert again.server is server is admin.server and server.running
    assert admin.stats_source().stats() == QueueStats(ready=1, delayed=0, in_flight=0, dead=1)
    assert admin.dead_letter_by_id(dead_id).body == "gone"
    again.close()
    again.close()
    assert server.running, "the admin still holds it"
    admin.close()
    assert not server.running
