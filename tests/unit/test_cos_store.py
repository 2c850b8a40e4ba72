"""CosStore through the real cos-python-sdk-v5 over HTTP against the local COS-compatible server.

The server runs in a child process (servers/cos_server.py), so tracemalloc here measures only the store.
It requires the session token, so every successful call below also proves the token is passed through.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc

import httpx
import pytest
from servers.cos_server import LocalCosServer

from objectstore import open_store
from objectstore.base import ObjectInfo
from objectstore.cos import MIB, CosStore
from objectstore.errors import AccessDenied, InvalidKey, ObjectChanged, ObjectExists, ObjectNotFound, StoreError
from relay_core.errors import ConfigError, Transient
from tencent_plumbing.credentials import static_credentials

SECRET_ID, SECRET_KEY, TOKEN = "AKIDunitcos", "unit-cos-secret-key", "unit-cos-session-token"


@pytest.fixture(scope="module")
def server():
    with LocalCosServer(SECRET_ID, SECRET_KEY, TOKEN) as running:
        yield running


@pytest.fixture
def bucket(server) -> str:
    return server.create_bucket()


@pytest.fixture
def store(server, bucket) -> CosStore:
    return server.store(bucket, part_size_bytes=1 * MIB, parallel_parts=2, sdk_retries=0)


def ops(server, bucket: str) -> list[str]:
    return [operation for operation, *_ in server.operations(bucket)]


def chunks_of(total_bytes: int, chunk_bytes: int = 256 * 1024, digest=None):
    """Fresh pseudo-random chunks, dropped after use; feeds ``digest`` with what it yields."""
    left = total_bytes
    while left:
        chunk = os.urandom(min(chunk_bytes, left))
        if digest is not None:
            digest.update(chunk)
        left -= len(chunk)
        yield chunk


# -- writes ------------------------------------------------------------------------------------
def test_small_object_is_one_put_and_round_trips(server, store, bucket):
    data = b"\xff\xd8\xff" + bytes(range(256)) * 40
    info = store.put_bytes(bucket, "input/u1/t1/原图 v2.jpg", data, content_type="image/jpeg")
    assert info == ObjectInfo(bucket, "input/u1/t1/原图 v2.jpg", len(data), hashlib.md5(data).hexdigest(), "image/jpeg")
    assert store.head(bucket, "input/u1/t1/原图 v2.jpg") == info
    assert store.get_bytes(bucket, "input/u1/t1/原图 v2.jpg") == data
    assert ops(server, bucket) == ["PutObject", "HeadObject", "GetObject"]


def test_big_write_is_multipart_from_a_generator_in_bounded_memory(server, bucket):
    part, parallel, total = 2 * MIB, 2, 24 * MIB
    store = server.store(bucket, part_size_bytes=part, parallel_parts=parallel, sdk_retries=0)
    written = hashlib.md5()
    tracemalloc.start()
    try:
        info = store.write(bucket, "big/video.mp4", chunks_of(total, digest=written), size=total)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read, read_size = hashlib.md5(), 0
        with store.open_read(bucket, "big/video.mp4") as stream:
            while chunk := stream.read(MIB):
                read.update(chunk)
                read_size += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\nCOS peaks: write {write_peak / MIB:.2f} MiB, read {read_peak / MIB:.2f} MiB of {total // MIB} MiB")
    assert write_peak < part * (parallel + 1) + MIB < total / 3
    assert read_peak < 3 * MIB
    assert (info.size, read_size, read.hexdigest()) == (total, total, written.hexdigest())
    assert info.etag.endswith("-12") and store.head(bucket, "big/video.mp4").etag == info.etag
    assert ops(server, bucket).count("UploadPart") == 12
    assert server.incomplete_uploads(bucket) == []


@pytest.mark.parametrize(
    ("total", "expected_parts"),
    [(0, 0), (100_000, 0), (MIB, 0), (MIB + 1, 2), (3 * MIB + MIB // 2, 4)],
    ids=["empty", "small", "exactly-one-part", "one-byte-over", "three-and-a-half"],
)
def test_unknown_length_writes(server, store, bucket, total, expected_parts):
    written = hashlib.md5()
    info = store.write(bucket, "out/any.bin", chunks_of(total, 300_000, written), content_type="video/mp4")
    assert info.size == total
    head = store.head(bucket, "out/any.bin")
    assert (head.size, head.content_type) == (total, "video/mp4")
    with store.open_read(bucket, "out/any.bin") as stream:
        assert hashlib.md5(stream.read()).hexdigest() == written.hexdigest()
    operations = ops(server, bucket)
    assert operations.count("UploadPart") == expected_parts
    assert ("PutObject" in operations) == (expected_parts == 0)


def test_one_chunk_bigger_than_many_parts_is_split(server, store, bucket):
    data = os.urandom(5 * MIB + 123)
    info = store.write(bucket, "one/chunk.bin", [data])
    assert store.get_bytes(bucket, "one/chunk.bin") == data and info.size == len(data)
    assert ops(server, bucket).count("UploadPart") == 6


# -- failed writes abort -------------------------------------------------------------------------
def test_a_failing_part_aborts_the_upload(server, store, bucket):
    store.put_bytes(bucket, "out/frame.jpg", b"the old one")
    server.fail_upload_part(nth=3)
    with pytest.raises(StoreError) as failure:
        store.write(bucket, "out/frame.jpg", chunks_of(6 * MIB))
    assert isinstance(failure.value, Transient) and "HTTP 500" in str(failure.value)
    assert store.get_bytes(bucket, "out/frame.jpg") == b"the old one"
    assert server.incomplete_uploads(bucket) == []
    operations = ops(server, bucket)
    last_part = max(n for n, operation in enumerate(operations) if operation == "UploadPart")
    assert operations.index("AbortMultipartUpload") > last_part  # parts in flight finished before the abort


class SourceBroke(RuntimeError):
    pass


def breaking_chunks(good_bytes: int):
    yield from chunks_of(good_bytes)
    raise SourceBroke("the vendor download broke")


def test_a_failing_chunk_iterator_aborts_the_upload(server, store, bucket):
    with pytest.raises(SourceBroke):
        store.write(bucket, "out/frame.jpg", breaking_chunks(3 * MIB + 5))
    assert store.head(bucket, "out/frame.jpg") is None
    assert server.incomplete_uploads(bucket) == []
    operations = ops(server, bucket)
    assert operations.count("UploadPart") >= 2 and "AbortMultipartUpload" in operations


def test_a_source_failing_within_the_first_part_starts_nothing(server, store, bucket):
    with pytest.raises(SourceBroke):
        store.write(bucket, "out/frame.jpg", breaking_chunks(MIB // 2))
    assert ops(server, bucket) == []


def test_a_transient_part_failure_is_retried_by_the_sdk(server, bucket):
    store = server.store(bucket, part_size_bytes=1 * MIB, sdk_retries=1)  # the SDK sleeps 1 s before retrying
    server.fail_upload_part(nth=2)
    data = os.urandom(3 * MIB)
    assert store.write(bucket, "out/retried.bin", [data]).size == len(data)
    assert store.get_bytes(bucket, "out/retried.bin") == data
    assert ops(server, bucket).count("UploadPart") == 4


# -- reads, list, copy, delete, presign ----------------------------------------------------------
def test_streaming_read_in_pieces_and_early_close(store, bucket):
    data = os.urandom(2 * MIB + 7)
    store.write(bucket, "in/blob", [data])
    with store.open_read(bucket, "in/blob") as stream:
        assert stream.read(10) == data[:10]
        assert stream.read(MIB) == data[10 : MIB + 10]
    with store.open_read(bucket, "in/blob") as stream:
        pieces = iter(lambda: stream.read(300_000), b"")
        assert b"".join(pieces) == data
        assert stream.read(5) == b""
    assert store.get_bytes(bucket, "in/blob", limit=3) == data[:3]


def test_list_pages_in_key_order(store, bucket):
    keys = ["a/2", "b/1", "a-b", "a/1", "ab/x", "a/sub/z"]
    for key in keys:
        store.put_bytes(bucket, key, key.encode())
    store.list_page_size = 2
    assert [i.key for i in store.list(bucket, "")] == sorted(keys)
    assert [i.key for i in store.list(bucket, "a/")] == ["a/1", "a/2", "a/sub/z"]
    info = next(iter(store.list(bucket, "b/")))
    assert (info.size, info.etag) == (3, hashlib.md5(b"b/1").hexdigest())


def test_copy_is_server_side_and_keeps_the_content_type(server, store, bucket):
    store.put_bytes(bucket, "staging/u/t/frame_01.jpg", b"image", content_type="image/jpeg")
    info = store.copy(bucket, "staging/u/t/frame_01.jpg", "output/u/t/frame_01.jpg")
    assert (info.key, info.size, info.content_type) == ("output/u/t/frame_01.jpg", 5, "image/jpeg")
    assert ops(server, bucket) == ["PutObject", "CopyObject", "HeadObject"]  # no download and upload
    assert store.get_bytes(bucket, "output/u/t/frame_01.jpg") == b"image"
    with pytest.raises(ObjectNotFound):
        store.copy(bucket, "staging/none.jpg", "output/none.jpg")


def test_missing_key_and_idempotent_delete(store, bucket):
    with pytest.raises(ObjectNotFound) as missing:
        store.open_read(bucket, "no/such/key")
    assert not isinstance(missing.value, Transient)
    assert store.head(bucket, "no/such/key") is None
    store.put_bytes(bucket, "x/one", b"1")
    store.delete(bucket, "x/one")
    store.delete(bucket, "x/one")
    assert store.head(bucket, "x/one") is None


def test_vendor_url_is_a_presigned_get_with_the_token(store, bucket):
    data = os.urandom(70_000)
    store.put_bytes(bucket, "input/u/t/a b.jpg", data)
    url = store.vendor_url(bucket, "input/u/t/a b.jpg", expires_s=600)
    assert "q-signature=" in url and "x-cos-security-token=" in url and SECRET_KEY not in url
    assert httpx.get(url).content == data
    tampered = url.replace("a%20b.jpg", "a%20c.jpg")
    assert httpx.get(tampered).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403


# -- credentials ---------------------------------------------------------------------------------
def test_wrong_secret_is_access_denied(server, bucket):
    wrong = server.store(bucket, credentials=static_credentials(SECRET_ID, "not-the-secret", TOKEN))
    for call in (
        lambda: wrong.put_bytes(bucket, "k", b"x"),
        lambda: wrong.head(bucket, "k"),
        lambda: list(wrong.list(bucket, "")),
        lambda: wrong.open_read(bucket, "k"),
    ):
        with pytest.raises(AccessDenied) as denied:
            call()
        assert not isinstance(denied.value, Transient) and "not-the-secret" not in str(denied.value)


@pytest.mark.parametrize("token", [None, "another-token"])
def test_the_session_token_is_required_and_checked(server, bucket, token):
    store = server.store(bucket, credentials=static_credentials(SECRET_ID, SECRET_KEY, token))
    with pytest.raises(AccessDenied):
        store.put_bytes(bucket, "k", b"x")


def test_credentials_are_asked_per_call_and_the_client_follows_rotation(server, bucket):
    answers = [("AKIDold", "expired-secret"), (SECRET_ID, SECRET_KEY)]
    current = {"creds": answers[0]}
    store = server.store(bucket, credentials=lambda: static_credentials(*current["creds"], TOKEN)())
    with pytest.raises(AccessDenied):
        store.put_bytes(bucket, "k", b"x")
    current["creds"] = answers[1]
    assert store.put_bytes(bucket, "k", b"x").size == 1


def test_environment_credentials_and_open_store(server, bucket, monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", TOKEN)
    store = open_store(server.store_url(bucket, part_size_mb=1, parallel_parts=3))
    assert isinstance(store, CosStore)
    assert (store.part_size_bytes, store.parallel_parts, store.region) == (MIB, 3, "ap-guangzhou")
    assert store.put_bytes(bucket, "env/k", b"abc").size == 3
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    with pytest.raises(AccessDenied, match="TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY"):
        store.head(bucket, "env/k")


def test_network_errors_are_retryable_store_errors(bucket):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = CosStore(
        bucket,
        region="ap-guangzhou",
        endpoint=f"http://127.0.0.1:{port}",
        credentials=static_credentials(SECRET_ID, SECRET_KEY),
        sdk_retries=0,
    )
    with pytest.raises(StoreError) as failure:
        store.head(bucket, "k")
    assert isinstance(failure.value, Transient) and SECRET_KEY not in str(failure.value)


# -- keys and configuration ----------------------------------------------------------------------
@pytest.mark.parametrize("key", ["", "../x", "a/../../x", "/abs", "a//b", "a/./b", "a/", "a\\b", "a\x00b"], ids=repr)
def test_hostile_keys_are_refused_before_any_request(server, store, bucket, key):
    calls = [
        lambda: store.put_bytes(bucket, key, b"x"),
        lambda: store.open_read(bucket, key),
        lambda: store.head(bucket, key),
        lambda: store.delete(bucket, key),
        lambda: store.copy(bucket, "safe", key),
        lambda: store.copy(bucket, key, "safe"),
        lambda: store.vendor_url(bucket, key),
        lambda: list(store.list(bucket, key + "/x")),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            call()
    assert server.operations(bucket) == []


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("cos://bucket-1250000000", "region"),
        ("cos://no_appid?region=ap-guangzhou", "<name>-<appid>"),
        ("cos://b-1250000000/path?region=ap-guangzhou", "<name>-<appid>"),
        ("cos://b-1250000000?region=ap-guangzhou&part_size=8", "unknown parameter"),
        ("cos://b-1250000000?region=ap-guangzhou&part_size_mb=0", "part_size_bytes"),
        ("cos://b-1250000000?region=ap-guangzhou&parallel_parts=x", "invalid literal"),
        ("cos://b-1250000000?region=ap-guangzhou&endpoint=ftp://h", "endpoint"),
    ],
)
def test_bad_urls_fail_with_one_line_naming_the_variable(url, complaint):
    with pytest.raises(ConfigError, match=complaint) as bad:
        CosStore.from_url(url)
    assert str(bad.value).startswith("RELAY_STORE: ")


def test_repr_and_defaults_hold_no_secret():
    store = CosStore.from_url(
        "cos://relay-1250000000?region=ap-shanghai", credentials=static_credentials("AKIDx", "s3cr3t-value")
    )
    assert (store.default_bucket, store.part_size_bytes, store.parallel_parts) == (
        "relay-1250000000",
        8 * MIB,
        2,
    )
    assert "s3cr3t" not in repr(store) and store.endpoint is None


# -- no overwrite, conditional copy --------------------------------------------------------------
def test_a_refusal_to_overwrite_is_read_from_409_or_412_and_confirmed_by_a_head(server, store, bucket):
    """COS answers a forbidden overwrite with 409, S3-style servers with 412; either means ObjectExists only
    when the object is really there (another 409, a concurrent conflict, stays retryable)."""
    store.put_bytes(bucket, "staging/u/t/a.jpg", b"judged")
    server.fail_operation("PutObject", status=409)
    with pytest.raises(ObjectExists):
        store.write(bucket, "staging/u/t/a.jpg", [b"other"], overwrite=False)
    with pytest.raises(ObjectExists):  # the local server's own answer (412)
        store.write(bucket, "staging/u/t/a.jpg", [b"other"], overwrite=False)
    server.fail_operation("PutObject", status=409)
    with pytest.raises(StoreError) as conflict:
        store.write(bucket, "staging/u/t/new.jpg", [b"new"], overwrite=False)
    assert isinstance(conflict.value, Transient) and not isinstance(conflict.value, ObjectExists)
    assert store.get_bytes(bucket, "staging/u/t/a.jpg") == b"judged"
    assert store.write(bucket, "staging/u/t/new.jpg", [b"new"], overwrite=False).etag == hashlib.md5(b"new").hexdigest()


def test_conditional_copy_of_a_multipart_object(server, store, bucket):
    """The version check happens on the server, so it holds for multipart etags too, which no md5 can check."""
    judged = store.write(bucket, "staging/u/t/v.mp4", chunks_of(3 * MIB))
    assert judged.etag.endswith("-3")
    assert store.copy(bucket, "staging/u/t/v.mp4", "output/u/t/v.mp4", if_etag=judged.etag).size == 3 * MIB
    store.write(bucket, "staging/u/t/v.mp4", chunks_of(3 * MIB))  # replaced by other bytes
    with pytest.raises(ObjectChanged):
        store.copy(bucket, "staging/u/t/v.mp4", "output/u/t/w.mp4", if_etag=judged.etag)
    assert store.head(bucket, "output/u/t/w.mp4") is None
