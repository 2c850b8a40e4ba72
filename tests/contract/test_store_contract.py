"""The ObjectStore contract (objectstore/base.py), run against every backend in ``stores.STORES``."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import tracemalloc

import pytest

from objectstore.base import CHUNK, ObjectInfo, ObjectStore, iter_file
from objectstore.errors import InvalidKey, ObjectChanged, ObjectExists, ObjectNotFound, StoreUnsupported

from .stores import LEFTOVERS, STORES

HOSTILE_KEYS = ["", "../x", "a/../../x", "/abs", "a//b", "a/./b", "a/", "./a", "a\\b", "a\x00b", "a/.."]
BIG_MIB = 64
MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-[0-9]+")


@pytest.fixture(params=sorted(STORES))
def backend(request, tmp_path):
    store = STORES[request.param](tmp_path)
    yield request.param, store
    store.close()


@pytest.fixture
def store(backend) -> ObjectStore:
    return backend[1]


@pytest.fixture
def bucket(store) -> str:
    return store.default_bucket


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- round trips -----------------------------------------------------------------------------
def test_put_get_head_round_trip(store, bucket):
    data = b"\x89PNG\r\n" + bytes(range(256)) * 10
    info = store.put_bytes(bucket, "input/u1/t1/original.png", data, content_type="image/png")
    assert info == ObjectInfo(bucket, "input/u1/t1/original.png", len(data), md5(data), "image/png")
    assert store.get_bytes(bucket, "input/u1/t1/original.png") == data
    assert store.get_bytes(bucket, "input/u1/t1/original.png", limit=4) == data[:4]
    assert store.head(bucket, "input/u1/t1/original.png") == info
    assert store.exists(bucket, "input/u1/t1/original.png")


def test_empty_object_and_default_content_type(store, bucket):
    info = store.write(bucket, "empty/zero.bin", iter([]))
    assert (info.size, info.etag) == (0, md5(b""))
    head = store.head(bucket, "empty/zero.bin")
    assert (head.size, head.etag, head.content_type) == (0, md5(b""), "application/octet-stream")
    assert store.get_bytes(bucket, "empty/zero.bin") == b""


def test_overwrite_replaces_content_and_metadata(store, bucket):
    store.put_bytes(bucket, "k/obj", b"old", content_type="text/plain")
    store.put_bytes(bucket, "k/obj", b"new content", content_type="image/jpeg")
    head = store.head(bucket, "k/obj")
    assert (head.size, head.etag, head.content_type) == (11, md5(b"new content"), "image/jpeg")
    assert store.get_bytes(bucket, "k/obj") == b"new content"


def test_non_ascii_key_round_trip(store, bucket):
    key = "input/u1/t1/原图 v2.jpg"
    store.put_bytes(bucket, key, b"jpeg bytes", content_type="image/jpeg")
    assert store.get_bytes(bucket, key) == b"jpeg bytes"
    assert [i.key for i in store.list(bucket, "input/u1/t1/")] == [key]


# -- streaming -------------------------------------------------------------------------------
def _numbered_chunks(count: int):
    tail = os.urandom(CHUNK - 4)
    for n in range(count):
        yield n.to_bytes(4, "big") + tail  # a fresh 1 MiB per chunk, dropped after use


def test_big_write_and_read_stream_in_bounded_memory(store, bucket):
    expected = hashlib.md5()
    tail = None
    tracemalloc.start()
    try:
        info = store.write(bucket, "big/blob.bin", _numbered_chunks(BIG_MIB), size=BIG_MIB * CHUNK)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read_digest, read_size, first = hashlib.md5(), 0, None
        with store.open_read(bucket, "big/blob.bin") as stream:
            for chunk in iter_file(stream, CHUNK):
                first = first if first is not None else chunk[:4]
                tail = tail if tail is not None else chunk[4:]
                read_digest.update(chunk)
                read_size += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for n in range(BIG_MIB):
        expected.update(n.to_bytes(4, "big") + tail)
    assert info.size == read_size == BIG_MIB * CHUNK
    assert read_digest.hexdigest() == expected.hexdigest()
    # a multipart ETag (COS, S3) is "<md5 of the parts' md5s>-<parts>", not the content's md5
    assert info.etag == store.head(bucket, "big/blob.bin").etag
    assert info.etag == expected.hexdigest() or MULTIPART_ETAG.fullmatch(info.etag), info.etag
    assert first == (0).to_bytes(4, "big")
    assert write_peak < 8 * CHUNK, f"write peak {write_peak / CHUNK:.1f} MiB for a {BIG_MIB} MiB object"
    assert read_peak < 8 * CHUNK, f"read peak {read_peak / CHUNK:.1f} MiB for a {BIG_MIB} MiB object"


# -- atomicity -------------------------------------------------------------------------------
class _SourceBroke(RuntimeError):
    pass


def _breaking_chunks(good: int):
    for _ in range(good):
        yield b"x" * CHUNK
    raise _SourceBroke("the upstream download broke")


def test_failed_write_leaves_no_object_and_no_temp_files(backend, bucket):
    name, store = backend
    with pytest.raises(_SourceBroke):
        store.write(bucket, "out/u1/t1/frame_01.jpg", _breaking_chunks(3))
    assert store.head(bucket, "out/u1/t1/frame_01.jpg") is None
    assert list(store.list(bucket, "")) == []
    assert LEFTOVERS[name](store) == []


def test_failed_overwrite_keeps_the_old_object(backend, bucket):
    name, store = backend
    store.put_bytes(bucket, "out/a.jpg", b"the good one", content_type="image/jpeg")
    with pytest.raises(_SourceBroke):
        store.write(bucket, "out/a.jpg", _breaking_chunks(2))
    assert store.get_bytes(bucket, "out/a.jpg") == b"the good one"
    assert store.head(bucket, "out/a.jpg").etag == md5(b"the good one")
    assert LEFTOVERS[name](store) == []


# -- no overwrite ----------------------------------------------------------------------------
def test_write_without_overwrite_never_replaces_an_object(backend, bucket):
    name, store = backend
    first = store.write(bucket, "staging/u/t/a.jpg", [b"judged"], content_type="image/jpeg", overwrite=False)
    assert first.etag == md5(b"judged")
    with pytest.raises(ObjectExists):
        store.write(bucket, "staging/u/t/a.jpg", [b"swapped in"], overwrite=False)
    with pytest.raises(ObjectExists):  # a multipart-sized write is refused the same way, and aborted
        store.write(bucket, "staging/u/t/a.jpg", _numbered_chunks(3), overwrite=False)
    assert store.get_bytes(bucket, "staging/u/t/a.jpg") == b"judged"
    assert store.head(bucket, "staging/u/t/a.jpg") == first
    assert [i.key for i in store.list(bucket, "")] == ["staging/u/t/a.jpg"]
    assert LEFTOVERS[name](store) == []


def test_racing_writers_without_overwrite_one_wins(backend, bucket):
    """Writers that all found the key free commit at once: exactly one object, the winner's, whole."""
    name, store = backend
    writers = 4
    ready = threading.Barrier(writers)
    results: dict[int, object] = {}

    def body(n: int):
        yield bytes([n]) * 1000
        ready.wait(timeout=30)  # every writer has sent its bytes; now they all commit
        yield bytes([n]) * 1000

    def write(n: int) -> None:
        try:
            results[n] = store.write(bucket, "staging/u/t/race.jpg", body(n), overwrite=False)
        except ObjectExists as exc:
            results[n] = exc

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [n for n, result in results.items() if not isinstance(result, ObjectExists)]
    assert len(results) == writers and len(winners) == 1, results
    assert store.get_bytes(bucket, "staging/u/t/race.jpg") == bytes([winners[0]]) * 2000
    assert LEFTOVERS[name](store) == []


def test_copy_if_etag_copies_only_that_version(store, bucket):
    judged = store.put_bytes(bucket, "staging/u/t/a.jpg", b"judged", content_type="image/jpeg")
    info = store.copy(bucket, "staging/u/t/a.jpg", "output/u/t/a.jpg", if_etag=judged.etag)
    assert (info.size, info.etag) == (6, judged.etag)
    store.delete(bucket, "output/u/t/a.jpg")
    store.put_bytes(bucket, "staging/u/t/a.jpg", b"swapped in")  # replaced after it was judged
    with pytest.raises(ObjectChanged):
        store.copy(bucket, "staging/u/t/a.jpg", "output/u/t/a.jpg", if_etag=judged.etag)
    assert store.head(bucket, "output/u/t/a.jpg") is None


# -- keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=repr)
def test_hostile_keys_are_refused_before_any_io(store, bucket, key):
    store.put_bytes(bucket, "safe/src", b"src")
    calls = {
        "write": lambda: store.put_bytes(bucket, key, b"payload"),
        "open_read": lambda: store.open_read(bucket, key),
        "head": lambda: store.head(bucket, key),
        "exists": lambda: store.exists(bucket, key),
        "delete": lambda: store.delete(bucket, key),
        "copy to": lambda: store.copy(bucket, "safe/src", key),
        "copy from": lambda: store.copy(bucket, key, "safe/dst"),
        "vendor_url": lambda: store.vendor_url(bucket, key),
    }
    for what, call in calls.items():
        with pytest.raises(InvalidKey):
            call()
            pytest.fail(f"{what} accepted {key!r}")
    assert [i.key for i in store.list(bucket, "")] == ["safe/src"]


def test_hostile_list_prefix_is_refused(store, bucket):
    with pytest.raises(InvalidKey):
        list(store.list(bucket, "../"))


# -- missing objects -------------------------------------------------------------------------
def test_missing_object(store, bucket):
    with pytest.raises(ObjectNotFound):
        store.open_read(bucket, "no/such/key")
    with pytest.raises(ObjectNotFound):
        store.copy(bucket, "no/such/key", "dst/key")
    assert store.head(bucket, "no/such/key") is None
    assert not store.exists(bucket, "no/such/key")
    assert store.exists(bucket, "dst/key") is False


def test_a_prefix_of_keys_is_not_an_object(store, bucket):
    store.put_bytes(bucket, "dir/leaf", b"1")
    assert store.head(bucket, "dir") is None
    with pytest.raises(ObjectNotFound):
        store.open_read(bucket, "dir")
    store.delete(bucket, "dir")
    assert store.get_bytes(bucket, "dir/leaf") == b"1"


# -- list ------------------------------------------------------------------------------------
def test_list_by_prefix_in_key_order(store, bucket):
    keys = ["a/2", "b/1", "a-b", "a/1", "ab/x", "a/sub/z", "a0"]
    for key in keys:
        store.put_bytes(bucket, key, key.encode())
    listed = lambda prefix: [i.key for i in store.list(bucket, prefix)]  # noqa: E731
    assert listed("") == sorted(keys)
    assert listed("a/") == ["a/1", "a/2", "a/sub/z"]
    assert listed("a") == ["a-b", "a/1", "a/2", "a/sub/z", "a0", "ab/x"]
    assert listed("a/s") == ["a/sub/z"]
    assert listed("zzz") == []
    info = next(iter(store.list(bucket, "b/")))
    assert (info.bucket, info.key, info.size, info.etag) == (bucket, "b/1", 3, md5(b"b/1"))


# -- copy, delete ----------------------------------------------------------------------------
def test_copy(store, bucket):
    store.put_bytes(bucket, "staging/u/t/frame_01.jpg", b"image", content_type="image/jpeg")
    store.put_bytes(bucket, "output/u/t/frame_01.jpg", b"stale")
    info = store.copy(bucket, "staging/u/t/frame_01.jpg", "output/u/t/frame_01.jpg")
    assert (info.key, info.size, info.etag) == ("output/u/t/frame_01.jpg", 5, md5(b"image"))
    assert store.head(bucket, "output/u/t/frame_01.jpg").content_type == "image/jpeg"
    assert store.get_bytes(bucket, "output/u/t/frame_01.jpg") == b"image"
    assert store.get_bytes(bucket, "staging/u/t/frame_01.jpg") == b"image"


def test_delete_is_idempotent_and_leaves_siblings(store, bucket):
    store.put_bytes(bucket, "x/y/one", b"1")
    store.put_bytes(bucket, "x/y/two", b"2")
    store.delete(bucket, "x/y/one")
    store.delete(bucket, "x/y/one")
    store.delete(bucket, "never/existed")
    assert store.head(bucket, "x/y/one") is None
    assert [i.key for i in store.list(bucket, "")] == ["x/y/two"]


def test_delete_prefix(store, bucket):
    for key in ("staging/u/t/1", "staging/u/t/2", "staging/u/t2/1"):
        store.put_bytes(bucket, key, b".")
    assert store.delete_prefix(bucket, "staging/u/t/") == 2
    assert [i.key for i in store.list(bucket, "staging/")] == ["staging/u/t2/1"]


def test_vendor_url_is_a_url_or_unsupported(store, bucket):
    store.put_bytes(bucket, "input/u/t/a.jpg", b"a")
    try:
        url = store.vendor_url(bucket, "input/u/t/a.jpg", expires_s=600)
    except StoreUnsupported as exc:
        assert "inputs are uploaded instead" in str(exc)
    else:
        assert url.startswith(("http://", "https://"))
