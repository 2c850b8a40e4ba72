"""tencent_plumbing.api3: endpoints, error classes, and credentials read per request (role keys rotate)."""

from __future__ import annotations

import pytest

from tencent_plumbing.api3 import ApiTarget, Fault, call, classify, make_client, split_endpoint
from tencent_plumbing.credentials import TencentCredentials
from tests.servers.api3_server import LocalApi3Server

IMS = "tencentcloud.ims.v20201229.ims_client.ImsClient"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:8080", ("http", "127.0.0.1:8080")),
        ("localhost:9", ("http", "localhost:9")),
        ("ims.internal.tencentcloudapi.com", ("https", "ims.internal.tencentcloudapi.com")),
        ("http://10.0.0.5:80", ("http", "10.0.0.5:80")),
        ("https://127.0.0.1:8443", ("https", "127.0.0.1:8443")),
    ],
)
def test_split_endpoint(endpoint, expected):
    assert split_endpoint(endpoint) == expected


def test_split_endpoint_refuses_other_schemes():
    with pytest.raises(ValueError):
        split_endpoint("ftp://example.com")


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        ("AuthFailure.SignatureExpire", Fault.OURS),
        ("UnauthorizedOperation.Unauthorized", Fault.OURS),
        ("InvalidParameterValue.InvalidDataId", Fault.REJECTED),
        ("ResourceNotFound", Fault.NOT_FOUND),
        ("ResourceInUse.Queue", Fault.CONFLICT),
        ("InternalError", Fault.TRANSIENT),
        ("ClientNetworkError", Fault.TRANSIENT),
        ("RequestLimitExceeded", Fault.TRANSIENT),
        (None, Fault.TRANSIENT),
    ],
)
def test_classify(code, fault):
    assert classify(code) is fault


def test_credentials_are_read_on_every_request():
    """A role's keys rotate under a warm client: each request signs with what the provider gives now."""
    with LocalApi3Server("AKIDrotating", "key-after-rotation") as server:
        handed_out: list[str] = []

        def provider() -> TencentCredentials:
            key = "key-before-rotation" if not handed_out else "key-after-rotation"
            handed_out.append(key)
            return TencentCredentials("AKIDrotating", key)

        client = make_client(IMS, ApiTarget("ap-guangzhou", provider, server.endpoint, timeout_s=5))
        params = {"DataId": "d1", "FileContent": "aGVsbG8gd29ybGQgaW1hZ2U="}
        with pytest.raises(Exception, match="SignatureFailure"):
            call(client, "ImageModeration", params)
        assert call(client, "ImageModeration", params).Suggestion == "Pass"
        assert handed_out == ["key-before-rotation", "key-after-rotation"]
