"""The local COS-compatible server holds the COS rules the store relies on (so its tests mean something)."""

from __future__ import annotations

import time

import httpx
import pytest
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_exception import CosServiceError
from requests import Request
from servers.cos_app import classify
from servers.cos_server import LocalCosServer
from servers.cos_signature import canonical, parse_authorization, signature

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server():
    with LocalCosServer("AKIDserver", "server-secret") as running:
        yield running


@pytest.fixture
def bucket(server) -> str:
    return server.create_bucket()


def sdk_error(call) -> CosServiceError:
    with pytest.raises(CosServiceError) as failure:
        call()
    return failure.value


def test_signature_matches_the_sdk_for_headers_params_and_unicode_paths():
    config = CosConfig(Region="ap-guangzhou", SecretId="AKIDx", SecretKey="the-key")
    headers = {
        "Host": "b-1.cos.ap-guangzhou.myqcloud.com",
        "Content-Type": "image/jpeg",
        "x-cos-meta-Name": "a b/ü",
        "User-Agent": "not signed",
    }
    params = {"partNumber": "3", "uploadId": "id+/=", "prefix": ""}
    prepared = Request("PUT", "http://127.0.0.1/k", headers=headers, params=params).prepare()
    authorization = CosS3Auth(config, "dir/原图 1.jpg", params)(prepared).headers["Authorization"]
    auth = parse_authorization(authorization)
    assert auth["q-header-list"] == "content-length;content-type;host;x-cos-meta-name"  # no user-agent
    assert auth["q-url-param-list"] == "partnumber;prefix;uploadid"
    signed_headers = canonical({name.lower(): value.encode() for name, value in prepared.headers.items()})
    expected = signature("the-key", auth, "PUT", "/dir/原图 1.jpg", canonical(params), signed_headers)
    assert expected == auth["q-signature"]
    assert signature("other-key", auth, "PUT", "/dir/原图 1.jpg", canonical(params), signed_headers) != expected
    assert signature("the-key", auth, "PUT", "/dir/other.jpg", canonical(params), signed_headers) != expected


def test_errors_come_in_the_xml_the_sdk_digests(server, bucket):
    client = server.sdk_client()
    missing = sdk_error(lambda: client.get_object(Bucket=bucket, Key="no/such"))
    assert (missing.get_status_code(), missing.get_error_code()) == (404, "NoSuchKey")
    assert missing.get_request_id() != "Unknown" and bucket in missing.get_resource_location()
    foreign = sdk_error(lambda: client.get_object(Bucket=f"not-created-{int(time.time())}-1", Key="k"))
    assert (foreign.get_status_code(), foreign.get_error_code()) == (404, "NoSuchBucket")


def test_wrong_key_unsigned_and_expired_requests_are_refused(server, bucket):
    port = int(server.endpoint.rsplit(":", 1)[1])
    wrong = CosS3Client(
        CosConfig(
            Region="ap-guangzhou",
            SecretId="AKIDserver",
            SecretKey="guess",
            Scheme="http",
            IP="127.0.0.1",
            Port=port,
        ),
        retry=0,
    )
    denied = sdk_error(lambda: wrong.put_object(Bucket=bucket, Key="k", Body=b"x"))
    assert (denied.get_status_code(), denied.get_error_code()) == (403, "SignatureDoesNotMatch")
    host = {"Host": f"{bucket}.cos.ap-guangzhou.myqcloud.com"}
    assert httpx.get(f"{server.endpoint}/k", headers=host).status_code == 403
    server.sdk_client().put_object(Bucket=bucket, Key="k", Body=b"x")
    client = server.sdk_client()
    fresh = client.get_presigned_url(Bucket=bucket, Key=f"{bucket}/k", Method="GET", Expired=60)
    expired = client.get_presigned_url(Bucket=bucket, Key=f"{bucket}/k", Method="GET", Expired=-61)
    assert httpx.get(fresh).content == b"x"
    assert httpx.get(expired).status_code == 403 and b"expired" in httpx.get(expired).content
    assert server.operations(bucket)[-1][3] == 403


def test_a_configured_token_is_required():
    with LocalCosServer("AKIDtok", "tok-secret", token="the-token") as server:
        bucket = server.create_bucket()
        server.sdk_client().put_object(Bucket=bucket, Key="k", Body=b"x")
        port = int(server.endpoint.rsplit(":", 1)[1])
        tokenless = CosS3Client(
            CosConfig(
                Region="ap-guangzhou",
                SecretId="AKIDtok",
                SecretKey="tok-secret",
                Scheme="http",
                IP="127.0.0.1",
                Port=port,
            ),
            retry=0,
        )
        assert sdk_error(lambda: tokenless.head_object(Bucket=bucket, Key="k")).get_status_code() == 403


def test_parts_below_one_mib_are_refused_at_completion(server, bucket):
    client = server.sdk_client()

    def two_part_upload(key: str, first_part_bytes: int) -> dict:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = [(1, b"a" * first_part_bytes), (2, b"tail")]
        listing = {
            "Part": [
                {
                    "PartNumber": n,
                    "ETag": client.upload_part(Bucket=bucket, Key=key, Body=body, PartNumber=n, UploadId=upload_id)[
                        "ETag"
                    ],
                }
                for n, body in parts
            ]
        }
        try:
            return client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload=listing)
        except CosServiceError:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    assert sdk_error(lambda: two_part_upload("small", MIB - 1)).get_error_code() == "EntityTooSmall"
    assert two_part_upload("enough", MIB)["ETag"].strip('"').endswith("-2")
    assert server.incomplete_uploads(bucket) == []


def test_servers_do_not_share_buckets(server, bucket):
    with LocalCosServer("AKIDserver", "server-secret") as other:
        error = sdk_error(lambda: other.sdk_client().head_bucket(Bucket=bucket))
        assert error.get_status_code() == 404


def test_faults_count_from_when_they_are_set(server, bucket):
    client = server.sdk_client()
    server.fail_operation("PutObject", nth=2)
    client.put_object(Bucket=bucket, Key="a", Body=b"1")
    assert sdk_error(lambda: client.put_object(Bucket=bucket, Key="b", Body=b"2")).get_status_code() == 500
    client.put_object(Bucket=bucket, Key="c", Body=b"3")
    assert [row[3] for row in server.operations(bucket)] == [200, 500, 200]


@pytest.mark.parametrize(
    ("method", "key", "params", "operation"),
    [
        ("PUT", "k", [("partNumber", "1"), ("uploadId", "u")], "UploadPart"),
        ("POST", "k", [("uploads", "")], "InitiateMultipartUpload"),
        ("GET", "", [("uploads", "")], "ListMultipartUploads"),
        ("DELETE", "k", [("uploadId", "u")], "AbortMultipartUpload"),
        ("GET", "", [], "ListObjects"),
    ],
)
def test_classify(method, key, params, operation):
    assert classify(method, key, params, copy_source=False) == operation
