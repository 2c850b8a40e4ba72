"""LocalStore specifics beyond the shared contract: URL, layout, metadata (xattr or sidecar), symlink escapes,
pruning."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time

import pytest

from objectstore import local, open_store
from objectstore.errors import InvalidKey, ObjectChanged, ObjectExists, StoreError, StoreUnsupported
from objectstore.local import XATTR, LocalStore
from relay_core.errors import ConfigError


def _xattrs_here(directory) -> bool:
    """An independent probe: does a file in ``directory`` take a user xattr?"""
    with tempfile.NamedTemporaryFile(dir=directory) as probe:
        try:
            os.setxattr(probe.fileno(), "user.test-probe", b"1")
        except OSError:
            return False
    return True


@pytest.fixture(params=["xattr", "sidecar"])
def store(request, tmp_path) -> LocalStore:
    """Both ways of keeping metadata (the xattr one only where this filesystem takes user xattrs)."""
    if request.param == "xattr" and not _xattrs_here(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} takes no user xattrs: the sidecar variant covers it")
    return LocalStore(tmp_path / "root", "bkt", use_xattrs=request.param == "xattr")


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


def test_layout_one_data_file_per_object_and_metadata_out_of_listings(store):
    info = store.put_bytes("bkt", "input/u/t/a.jpg", b"abc", content_type="image/jpeg")
    assert (store.root / "bkt/input/u/t/a.jpg").read_bytes() == b"abc"
    sidecar = store.root / "bkt/input/u/t/.a.jpg.meta"
    if store.use_xattrs:  # one file per object: the metadata travels on the data file
        assert sorted(p.name for p in (store.root / "bkt/input/u/t").iterdir()) == ["a.jpg"]
        recorded = os.getxattr(store.root / "bkt/input/u/t/a.jpg", XATTR).decode()
        assert recorded.split(" ")[1] == info.etag == hashlib.md5(b"abc").hexdigest()
        assert recorded.endswith(" image/jpeg")
    else:
        assert sidecar.is_file()
    assert list((store.root / ".incoming").iterdir()) == []
    assert [i.key for i in store.list("bkt", "")] == ["input/u/t/a.jpg"]
    for key in ("input/u/t/.a.jpg.meta", "x/.y.tmp", ".d.meta/z"):
        with pytest.raises(InvalidKey, match="reserves"):
            store.put_bytes("bkt", key, b"v")


def test_the_store_keeps_metadata_in_xattrs_where_the_filesystem_takes_them(tmp_path):
    assert LocalStore(tmp_path / "root", "bkt").use_xattrs is _xattrs_here(tmp_path)


def test_an_xattr_the_filesystem_refuses_falls_back_to_a_sidecar(tmp_path):
    """A value over every filesystem's xattr limit (64 KiB): that object's metadata goes to a sidecar."""
    if not _xattrs_here(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} takes no user xattrs")
    store = LocalStore(tmp_path / "root", "bkt", use_xattrs=True)
    huge_type = "application/x-" + "v" * 70_000
    store.put_bytes("bkt", "k/odd", b"bytes", content_type=huge_type)
    assert (store.root / "bkt/k/.odd.meta").is_file()
    assert store.head("bkt", "k/odd").content_type == huge_type
    store.delete("bkt", "k/odd")
    assert not (store.root / "bkt/k").exists()


def test_sidecars_of_an_earlier_store_are_still_read_and_deleted(tmp_path):
    if not _xattrs_here(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} takes no user xattrs")
    LocalStore(tmp_path, "bkt", use_xattrs=False).put_bytes("bkt", "k/old.png", b"png", content_type="image/png")
    store = LocalStore(tmp_path, "bkt")  # the same root, opened by a store that writes xattrs
    assert store.use_xattrs
    assert store.head("bkt", "k/old.png").content_type == "image/png"
    store.delete("bkt", "k/old.png")
    assert not (tmp_path / "bkt/k").exists()  # the sidecar went too, so the directory was pruned


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


def test_an_object_that_is_a_symlink_is_refused_and_not_listed(store, tmp_path):
    (tmp_path / "secret").write_bytes(b"secret")
    store.put_bytes("bkt", "k/inside", b"inside")
    os.symlink(tmp_path / "secret", store.root / "bkt/k/out")
    os.symlink(store.root / "bkt/k/inside", store.root / "bkt/k/alias")
    for key in ("k/out", "k/alias"):
        with pytest.raises(InvalidKey, match="symlink"):
            store.open_read("bkt", key)
        with pytest.raises(InvalidKey, match="symlink"):
            store.head("bkt", key)
        with pytest.raises(InvalidKey, match="symlink"):
            store.copy("bkt", key, "k/copied")
    assert [i.key for i in store.list("bkt", "")] == ["k/inside"]
    store.delete("bkt", "k/out")  # removes the link itself, never what it points to
    assert (tmp_path / "secret").read_bytes() == b"secret"


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


def test_writes_survive_deletes_pruning_the_same_parents(store):
    """Tasks of one user stage and clear files under one parent at once: a delete prunes the parent while a write
    makes its own directory in it. Every write must land (it once failed "No such file or directory")."""
    errors: list[str] = []

    def churn(worker: int) -> None:
        for i in range(150):
            key = f"staging/seller-3/t{worker}-{i}/frame_01.jpg"
            try:
                store.put_bytes("bkt", key, b"x" * 64)
                store.copy("bkt", key, f"output/seller-3/t{worker}-{i}/frame_01.jpg")
                store.delete("bkt", key)
            except StoreError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list(store.list("bkt", "output/seller-3/"))) == 4 * 150


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


def test_copy_if_etag_checks_the_bytes_it_copies_not_the_recorded_etag(store):
    """Bytes changed in place under metadata that still claims the judged etag: the copy is refused."""
    judged = store.put_bytes("bkt", "staging/u/t/a.jpg", b"judged bytes")
    path = store.root / "bkt/staging/u/t/a.jpg"
    stat = path.stat()
    with open(path, "r+b") as data:  # same inode, same size, mtime put back: the metadata looks current
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


def test_a_write_killed_midway_leaves_nothing_under_the_bucket_and_is_swept_later(tmp_path):
    """A SIGKILLed writer: its partial file sits in ROOT/.incoming (no prefix listing shows it), and a store
    opened later sweeps it once it is old."""
    import signal
    import subprocess
    import sys
    import time as wall

    from objectstore.local import INCOMING, sweep_incoming

    script = (
        "import itertools, sys, time\n"
        "from objectstore.local import LocalStore\n"
        "store = LocalStore(sys.argv[1], 'relay-1')\n"
        "def chunks():\n"
        "    for n in itertools.count():\n"
        "        if n == 3: print('writing', flush=True)\n"
        "        yield b'x' * 65536\n"
        "        time.sleep(0.01)\n"
        "store.write('relay-1', 'staging/u1/t1/frame_01.jpg', chunks())\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    bucket = tmp_path / "relay-1"
    assert [p for p in bucket.rglob("*") if p.is_file()] == []  # nothing visible, not even hidden partials
    store = LocalStore(tmp_path, "relay-1")
    assert store.delete_prefix("relay-1", "staging/u1/t1/") == 0
    partial = list((tmp_path / INCOMING).glob("*.tmp"))
    assert len(partial) == 1 and store.swept == 0  # too young to sweep: it could be a write in progress
    old = wall.time() - 7200
    os.utime(partial[0], (old, old))
    assert sweep_incoming(tmp_path / INCOMING, 3600) == 1 and not partial[0].exists()


def test_a_delete_cut_short_never_leaves_an_orphan_sidecar(tmp_path):
    store = LocalStore(tmp_path, "relay-1", use_xattrs=False)
    store.put_bytes("relay-1", "staging/u1/t1/a.jpg", b"\xff\xd8\xff" + b"x" * 100, "image/jpeg")
    sidecar = tmp_path / "relay-1" / "staging/u1/t1/.a.jpg.meta"
    assert sidecar.exists()
    sidecar.unlink()  # what a crash after the first unlink of delete leaves: the object, without its sidecar
    info = store.head("relay-1", "staging/u1/t1/a.jpg")
    assert info is not None and info.size == 103  # head recomputes; nothing is lost
    assert store.delete_prefix("relay-1", "staging/u1/t1/") == 1
    assert [p for p in (tmp_path / "relay-1").rglob("*") if p.is_file()] == []


def test_a_copy_links_the_judged_file_and_a_later_write_of_the_source_leaves_it_alone(store):
    judged = store.put_bytes("bkt", "staging/u/t/a.jpg", b"judged bytes", content_type="image/jpeg")
    info = store.copy("bkt", "staging/u/t/a.jpg", "output/u/t/a.jpg", if_etag=judged.etag)

    src, dst = store.root / "bkt/staging/u/t/a.jpg", store.root / "bkt/output/u/t/a.jpg"
    assert os.stat(dst).st_ino == os.stat(src).st_ino  # one file, no byte written again
    assert (info.etag, info.content_type) == (judged.etag, "image/jpeg")
    assert store.head("bkt", "output/u/t/a.jpg") == info
    store.put_bytes("bkt", "staging/u/t/a.jpg", b"written later")  # a new file under the name, as every write
    store.delete("bkt", "staging/u/t/a.jpg")
    assert store.get_bytes("bkt", "output/u/t/a.jpg") == b"judged bytes"
    assert store.head("bkt", "output/u/t/a.jpg") == info
    assert not any(p.name.endswith(".tmp") for p in store.root.rglob("*"))


def test_a_source_whose_metadata_does_not_match_its_bytes_is_copied_into_a_new_file(store):
    store.put_bytes("bkt", "staging/u/t/a.jpg", b"judged bytes")
    path = store.root / "bkt/staging/u/t/a.jpg"
    stat = path.stat()
    with open(path, "r+b") as data:  # edited in place, mtime put back: the recorded etag is now wrong
        data.write(b"EDITED")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    info = store.copy("bkt", "staging/u/t/a.jpg", "output/u/t/a.jpg")

    assert os.stat(store.root / "bkt/output/u/t/a.jpg").st_ino != stat.st_ino
    assert info.etag == hashlib.md5(b"EDITED bytes").hexdigest()
    assert store.head("bkt", "output/u/t/a.jpg").etag == info.etag


def test_a_directory_swapped_for_a_symlink_is_refused_once_its_last_check_is_older_than_the_ttl(
    store, tmp_path, monkeypatch
):
    monkeypatch.setattr(local, "REAL_DIR_TTL_S", 0.05)
    store.put_bytes("bkt", "output/u/t/a.jpg", b"ours")  # output/u/t checked, and remembered as real
    outside = tmp_path / "outside"
    outside.mkdir()
    task_dir = store.root / "bkt/output/u/t"
    shutil.rmtree(task_dir)
    task_dir.symlink_to(outside)
    time.sleep(0.1)
    with pytest.raises(InvalidKey):
        store.put_bytes("bkt", "output/u/t/b.jpg", b"escaped?")
    assert list(outside.iterdir()) == []
