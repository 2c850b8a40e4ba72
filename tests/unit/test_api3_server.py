"""The local API 3.0 server verifies TC3-HMAC-SHA256 exactly as the real API does, driven by the real SDK."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.ims.v20201229.ims_client import ImsClient
from tencentcloud.tdmq.v20200217.tdmq_client import TdmqClient

from tests.servers import tc3
from tests.servers.api3_server import ApiError, LocalApi3Server

SECRET_ID, SECRET_KEY, TOKEN = "AKIDlocaltest", "local-secret-key-1", "session-token-abc"
IMAGE = {"DataId": "d1", "FileContent": "aGVsbG8gd29ybGQgaW1hZ2U="}


@pytest.fixture
def server():
    with LocalApi3Server(SECRET_ID, SECRET_KEY, TOKEN) as srv:
        yield srv


def sdk(client_cls, server, *, secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, region="ap-guangzhou"):
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=server.endpoint, protocol="http", reqTimeout=5))
    return client_cls(Credential(secret_id, secret_key, token), region, profile)


def error_code(fn) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        fn()
    return caught.value.code


def test_documented_signature_vector():
    """The worked example of Tencent's "Signature v3" page (its masked key included) gives its signature."""
    auth = tc3.Authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", "2019-02-25", "cvm", ("content-type", "host"), "")
    body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": "cvm.tencentcloudapi.com",
        "x-tc-timestamp": "1551113065",
    }
    signature = tc3.expected_signature("Gu5t9xGARNpq86cd98joQYCN3*******", auth, "POST", "/", "", headers, body)
    assert signature == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def test_signed_call_is_answered_and_recorded(server):
    response = sdk(ImsClient, server).call_json("ImageModeration", IMAGE)
    assert response["Response"]["Suggestion"] == "Pass" and response["Response"]["RequestId"]
    call = server.calls[-1]
    assert (call.service, call.action, call.version, call.region) == (
        "ims",
        "ImageModeration",
        "2020-12-29",
        "ap-guangzhou",
    )
    assert call.params == IMAGE


def test_wrong_key_wrong_id_and_token_are_rejected(server):
    assert (
        error_code(lambda: sdk(ImsClient, server, secret_key="not-the-key").call_json("ImageModeration", IMAGE))
        == "AuthFailure.SignatureFailure"
    )
    assert (
        error_code(lambda: sdk(ImsClient, server, secret_id="AKIDother").call_json("ImageModeration", IMAGE))
        == "AuthFailure.SecretIdNotFound"
    )
    assert (
        error_code(lambda: sdk(ImsClient, server, token=None).call_json("ImageModeration", IMAGE))
        == "AuthFailure.TokenFailure"
    )
    assert (
        error_code(lambda: sdk(ImsClient, server, token="other").call_json("ImageModeration", IMAGE))
        == "AuthFailure.TokenFailure"
    )
    assert server.calls == []


def test_stale_timestamp_is_expired(server):
    for skew_s in (301, -301):
        server.clock = lambda skew_s=skew_s: time.time() + skew_s
        assert (
            error_code(lambda: sdk(ImsClient, server).call_json("ImageModeration", IMAGE))
            == "AuthFailure.SignatureExpire"
        )
    server.clock = lambda: time.time() + 250
    assert sdk(ImsClient, server).call_json("ImageModeration", IMAGE)["Response"]["Suggestion"] == "Pass"


def test_tampered_replay_fails_and_exact_replay_passes(server):
    sdk(ImsClient, server).call_json("ImageModeration", IMAGE)
    raw = server.raw[-1]
    headers = httpx.Headers({k: v for k, v in raw.headers.items() if k.lower() not in ("content-length", "connection")})

    def replay(body: bytes, **changes: str) -> dict:
        changed = headers.copy()
        changed.update(changes)  # case-insensitive: a change replaces the header as received
        answer = httpx.post(f"http://{server.endpoint}/", content=body, headers=changed)
        return answer.json()["Response"]

    assert replay(raw.body)["Suggestion"] == "Pass"
    tampered = json.dumps({**IMAGE, "DataId": "d2"}).encode()
    assert replay(tampered)["Error"]["Code"] == "AuthFailure.SignatureFailure"
    stamp = str(int(raw.headers["X-TC-Timestamp"]) - 1)
    assert replay(raw.body, **{"X-TC-Timestamp": stamp})["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert replay(raw.body, Host="ims.tencentcloudapi.com")["Error"]["Code"] == "AuthFailure.SignatureFailure"
    unsigned = replay(raw.body, Authorization=raw.headers["Authorization"].replace("content-type;host", "host"))
    assert unsigned["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


def test_service_comes_from_the_credential_scope(server):
    class ImsSignedAsVm(ImsClient):
        _service = "vm"
        _apiVersion = "2021-09-22"

    assert error_code(lambda: sdk(ImsSignedAsVm, server).call_json("ImageModeration", IMAGE)) == "InvalidAction"

    class OldIms(ImsClient):
        _apiVersion = "2019-12-31"

    assert error_code(lambda: sdk(OldIms, server).call_json("ImageModeration", IMAGE)) == "NoSuchVersion"


def test_handlers_are_pluggable_and_faults_injectable(server):
    def review(params):
        if params.get("DataId") == "boom":
            raise ApiError("ResourceUnavailable.ModelCallFailed", "model down")
        return {"Suggestion": "Review", "Label": "Ad"}

    server.handle("ims", "ImageModeration", review)
    client = sdk(ImsClient, server)
    assert client.call_json("ImageModeration", IMAGE)["Response"]["Suggestion"] == "Review"
    assert (
        error_code(lambda: client.call_json("ImageModeration", {**IMAGE, "DataId": "boom"}))
        == "ResourceUnavailable.ModelCallFailed"
    )
    server.fail_next("ims", "ImageModeration", code="InternalError", times=2)
    server.fail_next("ims", "ImageModeration", status=502)
    assert error_code(lambda: client.call_json("ImageModeration", IMAGE)) == "InternalError"
    assert error_code(lambda: client.call_json("ImageModeration", IMAGE)) == "InternalError"
    assert error_code(lambda: client.call_json("ImageModeration", IMAGE)) == "ServerNetworkError"
    assert client.call_json("ImageModeration", IMAGE)["Response"]["Suggestion"] == "Review"


def test_cmq_registry_validates_like_the_service(server):
    client = sdk(TdmqClient, server)
    assert error_code(lambda: client.call_json("CreateCmqQueue", {"QueueName": "jobs-dlq"})) == "InvalidParameterValue"
    assert (
        error_code(lambda: client.call_json("CreateCmqQueue", {"QueueName": "jobs", "VisibilityTimeout": 0}))
        == "InvalidParameterValue"
    )
    assert (
        error_code(
            lambda: client.call_json(
                "CreateCmqQueue",
                {"QueueName": "jobs", "DeadLetterQueueName": "missing", "Policy": 0, "MaxReceiveCount": 3},
            )
        )
        == "ResourceNotFound"
    )
    client.call_json("CreateCmqQueue", {"QueueName": "jobs"})
    assert error_code(lambda: client.call_json("CreateCmqQueue", {"QueueName": "JOBS"})) == "ResourceInUse.Queue"
    assert (
        error_code(lambda: client.call_json("RewindCmqQueue", {"QueueName": "jobs", "StartConsumeTime": 1}))
        == "OperationDenied"
    )
    server.cmq.set_counts("jobs", active=3, inactive=1, delayed=2)
    detail = client.call_json("DescribeCmqQueueDetail", {"QueueName": "jobs"})["Response"]["QueueDescribe"]
    assert (detail["ActiveMsgNum"], detail["InactiveMsgNum"], detail["DelayMsgNum"]) == (3, 1, 2)
    assert error_code(lambda: client.call_json("DescribeCmqQueueDetail", {"QueueName": "nope"})) == "ResourceNotFound"
