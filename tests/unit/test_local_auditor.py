"""LocalMarkerAuditor: deterministic, blocks the emulator's marker in images and streamed staged videos."""

from __future__ import annotations

import pytest

from moderation.base import Verdict
from moderation.errors import AuditConfigError
from moderation.local import BLOCK_MARKER, LocalMarkerAuditor, contains_marker
from objectstore.base import CHUNK
from objectstore.errors import ObjectNotFound
from objectstore.local import LocalStore
from vendors.emulator import media

BUCKET = "relay-local"


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path, BUCKET)


def test_marker_is_the_emulators():
    assert BLOCK_MARKER == media.BLOCK_MARKER == b"RELAY-EMULATOR-BLOCK"


def test_images_from_bytes(store):
    audit = LocalMarkerAuditor(store)
    blocked = audit.audit_image(b"jpeg..." + BLOCK_MARKER + b"...", "t-1")
    passed = audit.audit_image(b"jpeg... RELAY-EMULATOR-BLOC", "t-2")
    assert (blocked.verdict, blocked.label) == (Verdict.BLOCK, "Marker")
    assert passed.verdict is Verdict.PASS and passed.label != "Marker"


def test_marker_found_across_chunk_boundaries():
    marker = BLOCK_MARKER
    for cut in range(1, len(marker)):
        assert contains_marker([b"a" * 5 + marker[:cut], marker[cut:] + b"z"])
    assert contains_marker([b"x", marker[:3], marker[3:9], marker[9:]])
    assert not contains_marker([marker[:10], b"-", marker[10:]])
    assert not contains_marker([])


def test_video_streamed_from_the_store(store):
    # the marker straddles the store's read chunk, so a per-chunk scan alone would miss it
    store.put_bytes(BUCKET, "staging/u/t/dirty.mp4", b"\0" * (CHUNK - 5) + BLOCK_MARKER + b"\0" * 10)
    store.put_bytes(BUCKET, "staging/u/t/clean.mp4", b"\0" * (CHUNK + 10))
    audit = LocalMarkerAuditor(store)
    dirty = audit.start_video(BUCKET, "staging/u/t/dirty.mp4", "t-1")
    clean = audit.start_video(BUCKET, "staging/u/t/clean.mp4", "t-2")
    assert (dirty, clean) == ("local:block:t-1", "local:pass:t-2")
    assert audit.video_result(dirty).verdict is Verdict.BLOCK and audit.video_result(dirty).label == "Marker"
    assert audit.video_result(clean).verdict is Verdict.PASS


def test_media_made_by_the_emulator(store):
    audit = LocalMarkerAuditor(store)
    for file_type in ("jpeg", "png"):
        assert audit.audit_image(media.make_file(file_type, 1, BLOCK_MARKER), "t-1").verdict is Verdict.BLOCK
        assert audit.audit_image(media.make_file(file_type, 1), "t-1").verdict is Verdict.PASS
    store.put_bytes(BUCKET, "staging/u/t/out.mp4", media.make_file("mp4", 2, BLOCK_MARKER))
    assert audit.start_video(BUCKET, "staging/u/t/out.mp4", "t-3") == "local:block:t-3"


def test_foreign_job_ids_and_missing_objects(store):
    audit = LocalMarkerAuditor(store)
    for job in ("vm-123456", "local:maybe:t-1", "other:pass:t-1"):
        with pytest.raises(AuditConfigError):
            audit.video_result(job)
    with pytest.raises(ObjectNotFound):
        audit.start_video(BUCKET, "staging/none.mp4", "t-1")
    store.put_bytes(BUCKET, "staging/a.mp4", b"clean")
    # "|" separates job ids inside a message: a data id never smuggles one in
    assert audit.start_video(BUCKET, "staging/a.mp4", "t|1") == "local:pass:t_1"


def test_an_outage_file_makes_the_local_auditor_fail_closed_until_removed(tmp_path):
    from moderation import open_auditor
    from moderation.errors import AuditUnavailable
    from objectstore.local import LocalStore

    outage = tmp_path / "moderation-down"
    auditor = open_auditor(f"local?outage_file={outage}", store=LocalStore(tmp_path / "store", "relay-1"))
    clean = media.make_jpeg(1)
    assert auditor.audit_image(clean, "t-1").verdict.value == "pass"
    outage.touch()
    with pytest.raises(AuditUnavailable):
        auditor.audit_image(clean, "t-1")
    with pytest.raises(AuditUnavailable):
        auditor.video_result("local:pass:t-1")
    outage.unlink()
    assert auditor.video_result("local:pass:t-1").verdict.value == "pass"


def test_unknown_local_auditor_options_are_refused(tmp_path):
    from moderation import open_auditor
    from objectstore.local import LocalStore
    from relay_core.errors import ConfigError

    with pytest.raises(ConfigError, match="RELAY_AUDITOR: unknown option"):
        open_auditor("local?outage=1", store=LocalStore(tmp_path / "store", "relay-1"))
