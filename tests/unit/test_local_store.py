"""LocalStore specifics beyond the shared contract: URL, layout, sidecars, symlink escapes, pruning."""

from __future__ import annotations

import hashlib
import os

import pytest

from objectstore import open_store
from objectstore.errors import InvalidKey, ObjectChanged, ObjectExists, StoreError, StoreUnsupported
from objectstore.local import LocalStore
from relay_core.errors import ConfigError


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "root", "bkt")


def test_from_url(tmp_path):
    store = open_store(f"file://{tmp_path}/my%20root?bucket=relay-demo")
    assert isinstance(store, LocalStore)
    assert (store.root, store.default_bucket) == (tmp_path / "my root", "relay-demo")
    assert LocalStore.from_url(f"file://{tmp_path}").default_bucket == "relay-local"
    assert LocalStore.from_url(f"file://localhost{tmp_path}").root == tmp_path


@pytest.mark.parametrize("url", ["file://host/x", "file://", "file:///tmp/x?bucket=Bad_Bucket", "s3:///x"])
def test_bad_urls_name_the_variable(url):
    with pytest.raises(ConfigError, match="^RELAY_STORE: "):
        LocalStore.from_url(url)


@pytest.mark.parametrize("bucket", ["", "UPPER", "-x", "a/b", "..", "a" * 64, ".relay"])
def test_bad_bucket_names(store, bucket):
    with pytest.raises(InvalidKey):
        store.put_bytes(bucket, "k", b"v")
    with pytest.raises(InvalidKey):
        store.head(bucket, "k")


def test_layout_and_sidecars_stay_out_of_listings(store):
    store.put_bytes("bkt", "input/u/t/a.jpg", b"abc", content_type="image/jpeg")
    assert (store.root / "bkt/input/u/t/a.jpg").read_bytes() == b"abc"
    assert (store.root / "bkt/input/u/t/.a.jpg.meta").is_file()
    assert [i.key for i in store.list("bkt", "")] == ["input/u/t/a.jpg"]
    for key in ("input/u/t/.a.jpg.meta", "x/.y.tmp", ".d.meta/z"):
        with pytest.raises(InvalidKey, match="reserves"):
            store.put_bytes("bkt", key, b"v")


def test_head_recomputes_the_etag_of_files_dropped_in_by_hand(store):
    store.put_bytes("bkt", "k/edited", b"original", content_type="text/plain")
    (store.root / "bkt/k/edited").write_bytes(b"edited by hand!")
    (store.root / "bkt/k").mkdir(exist_ok=True)
    (store.root / "bkt/k/dropped").write_bytes(b"no sidecar")
    edited = store.head("bkt", "k/edited")
    assert (edited.size, edited.etag) == (15, hashlib.md5(b"edited by hand!").hexdigest())
    dropped = store.head("bkt", "k/dropped")
    assert (dropped.etag, dropped.content_type) == (
        hashlib.md5(b"no sidecar").hexdigest(),
        "application/octet-stream",
    )


def test_symlinks_out_of_the_root_are_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (store.root / "bkt").mkdir()
    os.symlink(outside, store.root / "bkt" / "evil")
    with pytest.raises(InvalidKey, match="leaves the store root"):
        store.open_read("bkt", "evil/secret")
    with pytest.raises(InvalidKey):
        store.put_bytes("bkt", "evil/planted", b"x")
    with pytest.raises(InvalidKey):
        store.list("bkt", "evil/")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert list(store.list("bkt", "")) == []  # the walk does not follow the link


def test_a_bucket_directory_that_is_a_symlink_is_refused(store, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", store.root / "linked")
    with pytest.raises(InvalidKey):
        store.put_bytes("linked", "k", b"v")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_delete_prunes_empty_directories_below_the_bucket(store):
    store.put_bytes("bkt", "output/u/t/frame_01.jpg", b"1")
    store.put_bytes("bkt", "output/u/keep.txt", b"2")
    store.delete("bkt", "output/u/t/frame_01.jpg")
    assert not (store.root / "bkt/output/u/t").exists()
    assert (store.root / "bkt/output/u/keep.txt").exists()
    store.delete("bkt", "output/u/keep.txt")
    assert (store.root / "bkt").is_dir() and list((store.root / "bkt").iterdir()) == []


def test_a_key_cannot_be_object_and_directory(store):
    store.put_bytes("bkt", "a/b", b"1")
    with pytest.raises(StoreError):
        store.put_bytes("bkt", "a/b/c", b"2")
    with pytest.raises(StoreError):
        store.put_bytes("bkt", "a", b"3")
    assert [i.key for i in store.list("bkt", "")] == ["a/b"]
    assert not any(p.name.endswith(".tmp") for p in store.root.rglob("*"))


def test_vendor_url_names_the_fix(store):
    with pytest.raises(StoreUnsupported, match="no URL a vendor can fetch; inputs are uploaded instead"):
        store.vendor_url("bkt", "input/u/t/a.jpg")


def test_copy_if_etag_checks_the_bytes_it_copies_not_the_sidecar(store):
    """Bytes changed in place under a sidecar that still claims the judged etag: the copy is refused."""
    judged = store.put_bytes("bkt", "staging/u/t/a.jpg", b"judged bytes")
    path = store.root / "bkt/staging/u/t/a.jpg"
    stat = path.stat()
    with open(path, "r+b") as data:  # same inode, same size, mtime put back: the sidecar looks current
        data.write(b"BLOCKED")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert store.head("bkt", "staging/u/t/a.jpg").etag == judged.etag
    with pytest.raises(ObjectChanged):
        store.copy("bkt", "staging/u/t/a.jpg", "output/u/t/a.jpg", if_etag=judged.etag)
    assert store.head("bkt", "output/u/t/a.jpg") is None
    assert not any(p.name.endswith(".tmp") for p in store.root.rglob("*"))


def test_write_without_overwrite_refuses_a_key_that_is_a_prefix(store):
    store.put_bytes("bkt", "a/b/c", b"1")
    with pytest.raises(StoreError) as refused:
        store.write("bkt", "a/b", [b"2"], overwrite=False)
    assert not isinstance(refused.value, ObjectExists)
    assert not any(p.name.endswith(".tmp") for p in store.root.rglob("*"))
